/**
 * The `postern` command: `start` runs the gateway; `destconfig`, `smtproutes`, `certconfig` and
 * `queue` are thin shells over the same store and service functions the gateway uses.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigStore, type RouteHost } from '../config/store.js';
import { buildOptions, DEFAULT_OPTIONS, parseRouteHost, readConfigFile, type ConfigFile } from '../config/options.js';
import { displayName } from '../controls/names.js';
import { DEFAULT_ENTRY_NAME, TLS_MODE_LABELS } from '../controls/types.js';
import { ValidationError } from '../controls/validate.js';
import { Gateway } from '../gateway.js';
import { QueueStore, type ListedRecipient, type ListedState } from '../queue/store.js';
import { formatTable, LIST_HEADER, listRows } from './format.js';
import { parseSettingFlags, type SettingFlags } from './settings-flags.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'data directory').default(DEFAULT_OPTIONS.dataDir);
}

function withStore<T>(dataDir: string, fn: (s: ConfigStore) => T): T {
  const s = ConfigStore.open(dataDir);
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

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

export function buildProgram(): Command {
  const program = new Command('postern').description('Postern outbound mail gateway').showHelpAfterError();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('start')
    .description('run the gateway: relay listener, durable queue and delivery')
    .addOption(new Option('--data-dir <dir>', `data directory (default ${DEFAULT_OPTIONS.dataDir})`))
    .option('--config <file>', 'JSON config file (flags override it)')
    .option('--listen <host:port>', `private listener (default ${DEFAULT_OPTIONS.listen.host}:${DEFAULT_OPTIONS.listen.port})`)
    .option('--dns-server <host:port>', 'DNS server to use (repeatable; default: the system resolvers)', collect)
    .option('--smtp-port <n>', 'port of remote mail servers (default 25)')
    .option('--hostname <name>', 'EHLO name (default: the machine name)')
    .option('--allow <cidr>', 'client network allowed to relay (repeatable; default loopback)', collect)
    .action(async (o: { dataDir?: string; config?: string; listen?: string; dnsServer?: string[]; smtpPort?: string; hostname?: string; allow?: string[] }) => {
      const file = o.config ? readConfigFile(o.config) : {};
      const flags: ConfigFile = {
        dataDir: o.dataDir,
        listen: o.listen,
        dnsServers: o.dnsServer,
        smtpPort: o.smtpPort === undefined ? undefined : Number.isInteger(Number(o.smtpPort)) ? Number(o.smtpPort) : (o.smtpPort as unknown as number),
        hostname: o.hostname,
        allowedNetworks: o.allow,
      };
      const options = buildOptions(file, flags);
      const gw = new Gateway(options);
      const addr = await gw.start();
      process.stdout.write(
        `Postern listening on ${addr.address}:${addr.port}, data in ${resolve(options.dataDir)}, mail log ${resolve(gw.logDir, 'mail.log')}\n`,
      );
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        process.stdout.write(`${sig}: stopping\n`);
        gw.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });

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

  const routes = program.command('smtproutes').description('SMTP routes: hosts that replace MX lookup for a domain');
  routes
    .command('new')
    .argument('<domain>')
    .argument('<hosts>', 'HOST[:PORT][,HOST[:PORT]...] in order of priority')
    .addOption(dataDirOption())
    .action((domain: string, hosts: string, o: { dataDir: string }) => {
      const list: RouteHost[] = hosts.split(',').map((h) => parseRouteHost(h));
      const d = withStore(o.dataDir, (s) => s.putRoute(domain, list));
      process.stdout.write(`Route for ${d}: ${list.map((h) => (h.port ? `${h.host}:${h.port}` : h.host)).join(', ')}\n`);
    });
  routes
    .command('delete')
    .argument('<domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      process.stdout.write(`Deleted the route for ${withStore(o.dataDir, (s) => s.deleteRoute(domain))}.\n`);
    });
  routes
    .command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) => {
      const r = withStore(o.dataDir, (s) => s.routes());
      if (o.json) {
        process.stdout.write(JSON.stringify(Object.fromEntries(r), null, 2) + '\n');
        return;
      }
      const rows = [...r].map(([d, hs]) => [d, hs.map((h) => (h.port ? `${h.host}:${h.port}` : h.host)).join(', ')]);
      process.stdout.write(rows.length ? formatTable(['Domain', 'Destination hosts'], rows) + '\n' : 'No SMTP routes configured.\n');
    });

  const cert = program.command('certconfig').description('certificates and trusted authorities');
  const auth = cert.command('authority').description('custom certificate authorities trusted for outbound verification');
  auth
    .command('add')
    .argument('<file>', 'PEM file with one or more CA certificates')
    .addOption(dataDirOption())
    .action((file: string, o: { dataDir: string }) => {
      const added = withStore(o.dataDir, (s) => s.addAuthorities(readFileSync(file, 'utf8')));
      process.stdout.write(added.length ? added.map((a) => `Added ${a.id}: ${a.subject} (SHA-256 ${a.fingerprint.slice(0, 16)}…)\n`).join('') : 'Already trusted; nothing added.\n');
    });
  auth
    .command('remove')
    .argument('<id>', 'authority id or SHA-256 fingerprint prefix')
    .addOption(dataDirOption())
    .action((id: string, o: { dataDir: string }) => {
      const a = withStore(o.dataDir, (s) => s.removeAuthority(id));
      process.stdout.write(`Removed ${a.id}: ${a.subject}\n`);
    });
  auth
    .command('list')
    .addOption(dataDirOption())
    .action((o: { dataDir: string }) => {
      const [list, g] = withStore(o.dataDir, (s) => [s.authorities(), s.globals()] as const);
      process.stdout.write(`System authorities: ${g.useSystemAuthorities ? 'trusted' : 'not trusted'}\n`);
      const rows = list.map((a) => [String(a.id), a.subject, a.notAfter, a.fingerprint.slice(0, 16)]);
      process.stdout.write(rows.length ? formatTable(['ID', 'Subject', 'Valid until', 'SHA-256'], rows) + '\n' : 'No custom authorities.\n');
    });
  auth
    .command('system')
    .argument('<on|off>')
    .addOption(dataDirOption())
    .description("trust the system's root authorities or not")
    .action((v: string, o: { dataDir: string }) => {
      if (v !== 'on' && v !== 'off') throw new ValidationError('system authorities', v, 'on, off');
      withStore(o.dataDir, (s) => s.setGlobals({ useSystemAuthorities: v === 'on' }));
      process.stdout.write(`System authorities: ${v === 'on' ? 'trusted' : 'not trusted'}\n`);
    });

  const q = program.command('queue').description('the delivery queue');
  q.command('list')
    .addOption(dataDirOption())
    .option('--domain <domain>', 'only this destination domain')
    .addOption(
      new Option('--state <state>', 'pending (queued and deferred), queued, deferred, delivered, bounced, deleted')
        .choices(['pending', 'queued', 'deferred', 'delivered', 'bounced', 'deleted'])
        .default('pending'),
    )
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; domain?: string; state: ListedState | 'pending'; json?: boolean }) => {
      const store = QueueStore.open(o.dataDir);
      let rows: ListedRecipient[];
      try {
        rows = store.list({ domain: o.domain, state: o.state });
      } finally {
        store.close();
      }
      const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
      if (o.json) {
        const out = rows.map((r) => ({ ...r, nextAttempt: iso(r.nextAttempt), finishedAt: iso(r.finishedAt) }));
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${rows.length} recipients ${o.state}\n`);
      if (rows.length === 0) return;
      const table = rows.map((r) => [
        String(r.mid),
        String(r.rid),
        `<${r.from}>`,
        r.to,
        r.state,
        String(r.attempts),
        iso(r.nextAttempt ?? r.finishedAt) ?? '',
        r.lastReply ?? '',
      ]);
      process.stdout.write(formatTable(['MID', 'RID', 'From', 'To', 'State', 'Attempts', 'Next attempt / finished', 'Last reply'], table) + '\n');
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof ValidationError) {
      process.stderr.write(`postern: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

export { TLS_MODE_LABELS };
