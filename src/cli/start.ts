/**
 * `postern start`: runs the gateway until SIGTERM or SIGINT.
 */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { buildOptions, DEFAULT_OPTIONS, readConfigFile, type ConfigFile } from '../config/options.js';
import { Gateway } from '../gateway.js';
import { collect, out } from './common.js';

export function addStartCommand(program: Command): void {
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
      out(
        `Postern listening on ${addr.address}:${addr.port}, data in ${resolve(options.dataDir)}, mail log ${resolve(gw.logDir, 'mail.log')}\n`,
      );
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        out(`${sig}: stopping\n`);
        gw.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });

}
