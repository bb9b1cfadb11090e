/**
 * `postern vgconfig`: virtual gateways, the sending addresses mail can leave from, and which
 * sender domains use each (`*` for every other sender).
 */
import { Command } from 'commander';
import { GatewayStore } from '../config/gateways.js';
import { ConfigStore } from '../config/store.js';
import { cliBy, recorder } from '../manage/audit.js';
import { GatewayService } from '../manage/gateways.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

function service(store: ConfigStore, dataDir: string): GatewayService {
  return new GatewayService(store, recorder(dataDir, cliBy()));
}

export function addVgconfigCommand(program: Command): void {
  const vg = program.command('vgconfig').description('virtual gateways: sending addresses and the senders that use them');
  vg.command('new')
    .description('add (or change) a virtual gateway: a name and the local address its connections leave from')
    .argument('<name>')
    .argument('<address>', 'local IPv4 or IPv6 address connections are bound to')
    .option('--hostname <name>', 'EHLO name used from this address')
    .addOption(dataDirOption())
    .action(async (name: string, address: string, o: { hostname?: string; dataDir: string }) => {
      const store = ConfigStore.open(o.dataDir);
      try {
        await service(store, o.dataDir).put({ name, address, ...(o.hostname ? { hostname: o.hostname } : {}) });
      } finally {
        store.close();
      }
      out(`Virtual gateway ${name}: ${address}\n`);
    });
  vg.command('delete')
    .description('remove a virtual gateway (refused while a sender domain is assigned to it)')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => service(s, o.dataDir).delete(name));
      out(`Deleted virtual gateway ${name}.\n`);
    });
  vg.command('assign')
    .description('send the mail of a sender domain (or * for every other sender) from a virtual gateway')
    .argument('<sender-domain>', 'sender domain, or * for every sender not assigned otherwise')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((domain: string, name: string, o: { dataDir: string }) => {
      const d = withStore(o.dataDir, (s) => service(s, o.dataDir).assign(domain, name));
      out(`Mail from ${d === '*' ? 'every other sender' : d} leaves from ${name}.\n`);
    });
  vg.command('unassign')
    .description('remove the assignment of a sender domain (its mail then follows *, or the system address)')
    .argument('<sender-domain>')
    .addOption(dataDirOption())
    .action((domain: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => service(s, o.dataDir).unassign(domain));
      out(`Removed the assignment of ${domain}.\n`);
    });
  vg.command('list')
    .description('show the virtual gateways and the sender domains assigned to each')
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
