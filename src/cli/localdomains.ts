/**
 * `postern localdomains` (the organisation's own domains, the only ones the public listener
 * accepts mail for) and `postern listenerconfig public` (its limits), over
 * manage/public-listener.ts.
 */
import { Command } from 'commander';
import { displayName } from '../controls/names.js';
import { cliBy, recorder } from '../manage/audit.js';
import { PublicListenerService } from '../manage/public-listener.js';
import { dataDirOption, out, outJson, withStore } from './common.js';

const service = <T>(dataDir: string, fn: (s: PublicListenerService) => T): T => withStore(dataDir, (store) => fn(new PublicListenerService(store, recorder(dataDir, cliBy()))));

export function addLocaldomainsCommand(program: Command): void {
  const ld = program.command('localdomains').description("the organisation's own domains: the public listener accepts mail only for these");
  ld.command('add')
    .argument('<domain>', 'example.org, or .example.org for every subdomain')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      const n = service(o.dataDir, (s) => s.addLocalDomain(domain));
      out(`${displayName(n)} is a local domain. Give it an SMTP route to the internal mail server (postern smtproutes new ${n} HOST).\n`);
    });
  ld.command('delete')
    .argument('<domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      const n = service(o.dataDir, (s) => s.deleteLocalDomain(domain));
      out(`${displayName(n)} is no longer a local domain.\n`);
    });
  ld.command('list')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { json?: boolean; dataDir: string }) => {
      const names = service(o.dataDir, (s) => s.localDomains());
      if (o.json) return outJson(names);
      out(names.length === 0 ? 'No local domains: the public listener refuses every recipient.\n' : names.map(displayName).join('\n') + '\n');
    });

  const lc = program.command('listenerconfig').description('listener settings');
  lc.command('public')
    .description('the public listener (start --public-listen): its limits; without options, shows them')
    .option('--connections-per-client <n>', 'simultaneous connections from one client address (default 50)')
    .option('--max-message-size <bytes>', "message size limit, or default (the private listener's)")
    .option('--max-recipients <n>', "recipients per message, or default (the private listener's)")
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { connectionsPerClient?: string; maxMessageSize?: string; maxRecipients?: string; json?: boolean; dataDir: string }) => {
      const changing = o.connectionsPerClient !== undefined || o.maxMessageSize !== undefined || o.maxRecipients !== undefined;
      const l = service(o.dataDir, (s) => (changing ? s.setLimits(o) : s.limits()));
      if (o.json) return outJson(l);
      out(`Connections per client address: ${l.connectionsPerClient}\n`);
      out(`Maximum message size: ${l.maxMessageSize === null ? "default (the private listener's)" : `${l.maxMessageSize} bytes`}\n`);
      out(`Maximum recipients per message: ${l.maxRecipients === null ? "default (the private listener's)" : l.maxRecipients}\n`);
    });
}
