/**
 * `postern smtproutes`: SMTP routes that replace MX lookup for a domain.
 */
import { Command } from 'commander';
import type { ConfigStore } from '../config/store.js';
import { cliBy, recorder } from '../manage/audit.js';
import { parseRouteHosts, RouteService } from '../manage/routes.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

function service(store: ConfigStore, dataDir: string): RouteService {
  return new RouteService(store, recorder(dataDir, cliBy()));
}

export function addSmtproutesCommand(program: Command): void {
  const routes = program.command('smtproutes').description('SMTP routes: hosts that replace MX lookup for a domain');
  for (const mode of ['new', 'edit'] as const) {
    routes
      .command(mode)
      .description(
        mode === 'new'
          ? 'add a route: DOMAIN, .DOMAIN (its subdomains) or ALL (the default route, a smarthost for everything else)'
          : 'change the hosts of an existing route',
      )
      .argument('<domain>', 'example.com, .example.com or ALL')
      .argument('<hosts>', 'HOST[:PORT][,HOST[:PORT]...] in order of priority')
      .addOption(dataDirOption())
      .action((domain: string, hosts: string, o: { dataDir: string }) => {
        const list = parseRouteHosts(hosts);
        const d = withStore(o.dataDir, (s) => service(s, o.dataDir).put(domain, list, mode));
        out(`Route for ${d}: ${list.map((h) => (h.port ? `${h.host}:${h.port}` : h.host)).join(', ')}\n`);
      });
  }
  routes
    .command('delete')
    .description('remove a route')
    .argument('<domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      out(`Deleted the route for ${withStore(o.dataDir, (s) => service(s, o.dataDir).delete(domain))}.\n`);
    });
  routes
    .command('list')
    .description('show the routes (ALL is the default route)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) => {
      const r = withStore(o.dataDir, (s) => s.routes());
      if (o.json) {
        outJson(Object.fromEntries(r));
        return;
      }
      const rows = [...r].map(([d, hs]) => [d, hs.map((h) => (h.port ? `${h.host}:${h.port}` : h.host)).join(', ')]);
      out(rows.length ? formatTable(['Domain', 'Destination hosts'], rows) + '\n' : 'No SMTP routes configured.\n');
    });

}
