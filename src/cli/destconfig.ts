/**
 * `postern destconfig`: batch forms of the destination-controls operations.
 */
import { Command } from 'commander';
import { displayName } from '../controls/names.js';
import { DEFAULT_ENTRY_NAME } from '../controls/types.js';
import { ValidationError } from '../controls/validate.js';
import { dataDirOption, withStore } from './common.js';
import { formatTable, LIST_HEADER, listRows } from './format.js';
import { parseSettingFlags, type SettingFlags } from './settings-flags.js';

function settingOptions(cmd: Command): Command {
  return cmd
    .option('--tls <mode>', 'no, preferred, required, preferred-verify, required-verify, required-verify-hosted, default')
    .option('--concurrency <n>', 'concurrent connections, 1-1000, or default')
    .option('--messages-per-connection <n>', 'maximum messages per connection, 1-1000, or default')
    .option('--recipients <n/m>', 'N recipients (0-1000000000) per M minutes (1-60), none, or default')
    .option('--limit-per <scope>', 'apply limits per: domain, mx-ip, default')
    .option('--enforce <scope>', 'enforce limits: system, virtual-gateway, default')
    .option('--bounce-verification <on|off>', 'bounce verification address tagging: on, off, default')
    .option('--bounce-profile <name>', 'bounce profile name, or default')
    .option('--ip-preference <pref>', 'ipv6-preferred, ipv6-required, ipv4-preferred, ipv4-required, default');
}

function demoWarning(tls: string | undefined): void {
  if (tls && tls !== 'no' && tls !== 'default') {
    process.stderr.write(
      'You have chosen to enable TLS. Please use the \'certconfig\' command to ensure that there is a valid certificate configured.\n',
    );
  }
}

export function addDestconfigCommand(program: Command): void {
  const dc = program.command('destconfig').description('destination controls: the per-domain table');
  settingOptions(dc.command('new').argument('<domain>').addOption(dataDirOption()).description('create an entry')).action(
    (domain: string, o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, true);
      const name = withStore(o.dataDir, (s) => s.newEntry(domain, p.settings));
      demoWarning(o.tls);
      process.stdout.write(`Created ${displayName(name)}.\n`);
    },
  );
  settingOptions(dc.command('edit').argument('<domain>').addOption(dataDirOption()).description('change an entry')).action(
    (domain: string, o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, true);
      const name = withStore(o.dataDir, (s) => s.editEntry(domain, p.settings, p.reset));
      demoWarning(o.tls);
      process.stdout.write(`Changed ${displayName(name)}.\n`);
    },
  );
  settingOptions(dc.command('default').addOption(dataDirOption()).description('change the (Default) entry')).action(
    (o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, false);
      withStore(o.dataDir, (s) => s.editDefaults(p.settings));
      demoWarning(o.tls);
      process.stdout.write(`Changed ${DEFAULT_ENTRY_NAME}.\n`);
    },
  );
  dc.command('delete')
    .argument('<domain>')
    .addOption(dataDirOption())
    .description('remove an entry')
    .action((domain: string, o: { dataDir: string }) => {
      const name = withStore(o.dataDir, (s) => s.deleteEntry(domain));
      process.stdout.write(`Deleted ${displayName(name)}.\n`);
    });
  dc.command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .description('summary of all entries')
    .action((o: { dataDir: string; json?: boolean }) => {
      const table = withStore(o.dataDir, (s) => s.table());
      if (o.json) {
        process.stdout.write(
          JSON.stringify({ default: table.defaults, entries: table.list().map((e) => ({ name: e.name, display: displayName(e.name), settings: e.settings })) }, null, 2) + '\n',
        );
        return;
      }
      process.stdout.write(`There are currently ${table.size + 1} entries configured.\n\n`);
      process.stdout.write(formatTable(LIST_HEADER, listRows(table)) + '\n');
    });
  dc.command('setup')
    .addOption(dataDirOption())
    .option('--broken-tls-memory <hours>', 'hours a host whose TLS handshake failed gets clear text under Preferred (0 = off)')
    .option('--required-tls-alert <on|off>', 'alert when a required TLS connection fails')
    .description('global settings')
    .action((o: { dataDir: string; brokenTlsMemory?: string; requiredTlsAlert?: string }) => {
      const changes: { brokenTlsMemoryHours?: number; requiredTlsAlert?: boolean } = {};
      if (o.brokenTlsMemory !== undefined) {
        const h = Number(o.brokenTlsMemory);
        if (!/^\d+(\.\d+)?$/.test(o.brokenTlsMemory) || h > 8760) {
          throw new ValidationError('--broken-tls-memory', o.brokenTlsMemory, 'a number of hours from 0 to 8760');
        }
        changes.brokenTlsMemoryHours = h;
      }
      if (o.requiredTlsAlert !== undefined) {
        if (o.requiredTlsAlert !== 'on' && o.requiredTlsAlert !== 'off') throw new ValidationError('--required-tls-alert', o.requiredTlsAlert, 'on, off');
        changes.requiredTlsAlert = o.requiredTlsAlert === 'on';
      }
      const g = withStore(o.dataDir, (s) => s.setGlobals(changes));
      process.stdout.write(
        `Remembered broken TLS: ${g.brokenTlsMemoryHours === 0 ? 'off' : `${g.brokenTlsMemoryHours} hours`}\n` +
          `Alert when a required TLS connection fails: ${g.requiredTlsAlert ? 'on' : 'off'}\n`,
      );
    });

}
