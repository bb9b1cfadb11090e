/**
 * `postern vgconfig`: virtual gateways, the sending addresses mail can leave from, and which
 * sender domains use each (`*` for every other sender).
 */
import { Command } from 'commander';
import { GatewayStore } from '../config/gateways.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

export function addVgconfigCommand(program: Command): void {
  const vg = program.command('vgconfig').description('virtual gateways: sending addresses and the senders that use them');
  vg.command('new')
    .argument('<name>')
    .argument('<address>', 'local IPv4 or IPv6 address connections are bound to')
    .option('--hostname <name>', 'EHLO name used from this address')
    .addOption(dataDirOption())
    .action((name: string, address: string, o: { hostname?: string; dataDir: string }) => {
      withStore(o.dataDir, (s) => new GatewayStore(s).put({ name, address, ...(o.hostname ? { hostname: o.hostname } : {}) }));
      out(`Virtual gateway ${name}: ${address}\n`);
    });
  vg.command('delete')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new GatewayStore(s).delete(name));
      out(`Deleted virtual gateway ${name}.\n`);
    });
  vg.command('assign')
    .argument('<sender-domain>', 'sender domain, or * for every sender not assigned otherwise')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((domain: string, name: string, o: { dataDir: string }) => {
      const d = withStore(o.dataDir, (s) => new GatewayStore(s).assign(domain, name));
      out(`Mail from ${d === '*' ? 'every other sender' : d} leaves from ${name}.\n`);
    });
  vg.command('unassign')
    .argument('<sender-domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new GatewayStore(s).unassign(domain));
      out(`Removed the assignment of ${domain}.\n`);
    });
  vg.command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) => {
      const snap = withStore(o.dataDir, (s) => new GatewayStore(s).snapshot());
      if (o.json) {
        outJson({ gateways: [...snap.gateways.values()], assignments: Object.fromEntries(snap.assignments) });
        return;
      }
      if (snap.gateways.size === 0) {
        out('No virtual gateways: mail leaves from the system address.\n');
        return;
      }
      const users = (name: string) => [...snap.assignments].filter(([, g]) => g === name).map(([d]) => d).join(', ');
      const rows = [...snap.gateways.values()].map((g) => [g.name, g.address, g.hostname ?? '', users(g.name)]);
      out(formatTable(['Name', 'Address', 'Hostname', 'Sender domains'], rows) + '\n');
    });
}
