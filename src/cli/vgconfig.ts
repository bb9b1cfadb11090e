/**
 * `postern vgconfig`: virtual gateways, the sending addresses mail can leave from, and which
 * sender domains use each (`*` for every other sender).
 */
import { Command } from 'commander';
import { GatewayStore } from '../config/gateways.js';
import { dataDirOption, withStore } from './common.js';
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
      process.stdout.write(`Virtual gateway ${name}: ${address}\n`);
    });
  vg.command('delete')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new GatewayStore(s).delete(name));
      process.stdout.write(`Deleted virtual gateway ${name}.\n`);
    });
  vg.command('assign')
    .argument('<sender-domain>', 'sender domain, or * for every sender not assigned otherwise')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((domain: string, name: string, o: { dataDir: string }) => {
      const d = withStore(o.dataDir, (s) => new GatewayStore(s).assign(domain, name));
      process.stdout.write(`Mail from ${d === '*' ? 'every other sender' : d} leaves from ${name}.\n`);
    });
  vg.command('unassign')
    .argument('<sender-domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new GatewayStore(s).unassign(domain));
      process.stdout.write(`Removed the assignment of ${domain}.\n`);
    });
  vg.command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) => {
      const snap = withStore(o.dataDir, (s) => new GatewayStore(s).snapshot());
      if (o.json) {
        process.stdout.write(JSON.stringify({ gateways: [...snap.gateways.values()], assignments: Object.fromEntries(snap.assignments) }, null, 2) + '\n');
        return;
      }
      if (snap.gateways.size === 0) {
        process.stdout.write('No virtual gateways: mail leaves from the system address.\n');
        return;
      }
      const users = (name: string) => [...snap.assignments].filter(([, g]) => g === name).map(([d]) => d).join(', ');
      const rows = [...snap.gateways.values()].map((g) => [g.name, g.address, g.hostname ?? '', users(g.name)]);
      process.stdout.write(formatTable(['Name', 'Address', 'Hostname', 'Sender domains'], rows) + '\n');
    });
}
