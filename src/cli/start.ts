/**
 * `postern start`: runs the gateway until SIGTERM or SIGINT.
 */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { bindProblem } from '../config/local-address.js';
import { buildOptions, DEFAULT_OPTIONS, readConfigFile, type ConfigFile, type GatewayOptions } from '../config/options.js';
import { Gateway } from '../gateway.js';
import type { RunningAdmin } from '../admin/start.js';
import { readMembership, removeMembership, writeMembership } from '../cluster/membership.js';
import { collect, err, out } from './common.js';
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

/** The listener address is bound once and let go first: EADDRINUSE or EACCES here, with words. */
async function checkListenAddress(listen: { host: string; port: number }): Promise<void> {
  if (listen.port === 0) return;
  const e = await bindProblem(listen.host, listen.port);
  if (e === null) return;
  const why = e.code === 'EADDRINUSE' ? 'is in use by another process' : e.code === 'EACCES' ? 'needs privileges this user does not have' : e.code === 'EADDRNOTAVAIL' ? 'is not an address of this machine' : e.message;
  throw new Error(`cannot listen on ${listen.host}:${listen.port}: the address ${why}; nothing was started`);
}

/** Loaded only when the page is on: the web server's libraries would slow every other command's start. */
async function startAdminPage(options: GatewayOptions, gw: Gateway): Promise<RunningAdmin> {
  const { startAdmin } = await import('../admin/start.js');
  return startAdmin({ dataDir: options.dataDir, listen: options.admin!, sessionIdleMs: options.adminSessionIdleMs, hostname: options.hostname, log: gw.log, dnsServers: options.dnsServers, dnssecResolvers: options.dnssecResolvers, smtpPort: options.smtpPort, metrics: gw.metrics.registry, metricsAllow: options.metricsAllow });
}

/**
 * V8 lets its heap grow to two to four times what is live before a full collection; under
 * delivery load that was 210 MB of heap for 60–90 MB live (docs/performance.md, internet).
 * Growth bounded to 1.3× keeps the gateway's resident memory near its working set (1.5× left
 * the internet world's peak at 298–302 MB, 1.3× at 283–287, in the same time). A value given
 * on node's command line wins (node does not take this flag from NODE_OPTIONS).
 */
function boundHeapGrowth(): void {
  if (!process.execArgv.some((a) => a.startsWith('--heap-growing-percent'))) setFlagsFromString('--heap-growing-percent=30');
}

export function addStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the gateway: relay listener, durable queue and delivery')
    .addOption(new Option('--data-dir <dir>', `data directory (default ${DEFAULT_OPTIONS.dataDir})`))
    .option('--config <file>', 'JSON config file (flags override it)')
    .option('--listen <host:port>', `private listener (default ${DEFAULT_OPTIONS.listen.host}:${DEFAULT_OPTIONS.listen.port})`)
    .option('--dns-server <host:port>', 'DNS server to use (repeatable; default: the system resolvers)', collect)
    .option('--https-port <n>', "port of receiving domains' MTA-STS policy hosts (default 443; for tests, as --smtp-port)")
    .option('--dnssec-resolver <host:port>', 'validating resolver whose DNSSEC answers are believed; every look-up then goes to it (repeatable; default: a --dns-server on loopback is believed, no other)', collect)
    .option('--smtp-port <n>', 'port of remote mail servers (default 25)')
    .option('--hostname <name>', 'EHLO name (default: the machine name)')
    .option('--allow <cidr>', 'client network allowed to relay (repeatable; default loopback)', collect)
    .option('--log-to <where>', 'text mail log to: file (logs/mail.log), stdout or syslog; logs/mail.jsonl is always written (default file)')
    .option('--max-connections <n>', 'delivery connections open at most, over every destination (default 500)')
    .option('--idle-timeout <seconds>', 'disconnect a client that sends nothing for this long (default 300, RFC 5321)')
    .option('--admin <host:port|off>', `administration page and API over HTTPS (default ${DEFAULT_OPTIONS.admin?.host}:${DEFAULT_OPTIONS.admin?.port}; off disables it)`)
    .option('--metrics-allow <cidr>', 'client network that may read /metrics without an API token (repeatable; default none)', collect)
    .option('--admin-session-idle <seconds>', 'an idle administration session ends after this long (default 1800)')
    .option('--public-listen <host:port|off>', "public listener: mail for the organisation's local domains only, where bounces are verified (default off)")
    .option('--cluster <url|off>', 'join a cluster through Redis: redis://[:PASSWORD@]HOST:PORT[/DB], rediss://, redis+sentinel://, redis+cluster:// (remembered in the data directory; off leaves it)')
    .option('--node-name <name>', "this node's name in the cluster")
    .option('--cluster-lease-ttl <seconds>', 'lifetime of a connection slot lease in Redis (default 10)')
    .option('--cluster-secret-file <path|none>', 'share certificates and bounce-verification keys, sealed with the secret in this file (the same file on every node; mode 0600, at least 32 characters); none: keep them per node')
    .option('--syslog <host:port>', 'with --log-to syslog: a remote syslog server over UDP instead of the local /dev/log')
    .action(async (o: { dataDir?: string; config?: string; listen?: string; dnsServer?: string[]; dnssecResolver?: string[]; httpsPort?: string; smtpPort?: string; hostname?: string; allow?: string[]; logTo?: string; syslog?: string; idleTimeout?: string; maxConnections?: string; admin?: string; adminSessionIdle?: string; metricsAllow?: string[]; publicListen?: string; cluster?: string; nodeName?: string; clusterLeaseTtl?: string; clusterSecretFile?: string }) => {
      boundHeapGrowth();
      const file = o.config ? readConfigFile(o.config) : {};
      const flags: ConfigFile = {
        dataDir: o.dataDir,
        listen: o.listen,
        dnsServers: o.dnsServer,
        dnssecResolvers: o.dnssecResolver,
        httpsPort: o.httpsPort === undefined ? undefined : Number.isInteger(Number(o.httpsPort)) ? Number(o.httpsPort) : (o.httpsPort as unknown as number),
        smtpPort: o.smtpPort === undefined ? undefined : Number.isInteger(Number(o.smtpPort)) ? Number(o.smtpPort) : (o.smtpPort as unknown as number),
        hostname: o.hostname,
        allowedNetworks: o.allow,
        logTo: o.logTo,
        idleTimeout: o.idleTimeout === undefined ? undefined : (o.idleTimeout as unknown as number),
        maxConnections: o.maxConnections === undefined ? undefined : (o.maxConnections as unknown as number),
        syslog: o.syslog,
        admin: o.admin,
        publicListen: o.publicListen,
        cluster: o.cluster,
        nodeName: o.nodeName,
        clusterLeaseTtl: o.clusterLeaseTtl === undefined ? undefined : (o.clusterLeaseTtl as unknown as number),
        clusterSecretFile: o.clusterSecretFile,
        metricsAllow: o.metricsAllow,
        adminSessionIdle: o.adminSessionIdle === undefined ? undefined : (o.adminSessionIdle as unknown as number),
      };
      // A node restarted without --cluster stays in the cluster its data directory remembers.
      const dataDir = flags.dataDir ?? file.dataDir ?? DEFAULT_OPTIONS.dataDir;
      const remembered = readMembership(dataDir);
      const joined = remembered && flags.cluster === undefined && file.cluster === undefined ? { cluster: remembered.url, nodeName: remembered.node, clusterLeaseTtl: remembered.leaseTtlSeconds, ...(remembered.secretFile ? { clusterSecretFile: remembered.secretFile } : {}) } : {};
      const options = buildOptions({ ...joined, ...file }, flags);
      // A listener address in use is found before anything is created in the data directory.
      await checkListenAddress(options.listen);
      if (options.admin) await checkListenAddress(options.admin);
      if (options.publicListen) await checkListenAddress(options.publicListen);
      if (options.logTo === 'syslog' && options.syslog === undefined && !existsSync('/dev/log')) {
        throw new Error('--log-to syslog: /dev/log does not exist (no local syslog daemon or journald); give --syslog HOST:PORT or use --log-to file|stdout');
      }
      const gw = new Gateway(options);
      if (options.cluster) writeMembership(options.dataDir, options.cluster);
      else if (remembered && flags.cluster === 'off') removeMembership(options.dataDir);
      const addr = await gw.start();
      const where = options.logTo === 'file' ? `mail log ${resolve(gw.logDir, 'mail.log')}` : `mail log to ${options.logTo}, JSON lines in ${resolve(gw.logDir, 'mail.jsonl')}`;
      out(`Postern listening on ${addr.address}:${addr.port}, data in ${resolve(options.dataDir)}, ${where}\n`);
      if (gw.publicAddress) out(`Public listener on ${gw.publicAddress.address}:${gw.publicAddress.port} (local domains only: postern localdomains list)\n`);
      // Signals are handled from here on, while the page is still starting (SIGHUP's default would end the process).
      // SIGHUP (logrotate's postrotate, systemd's ExecReload): open the log files again by name.
      process.on('SIGHUP', () => {
        gw.log.reopen();
        gw.log.write({ event: 'config-reloaded', detail: 'SIGHUP: log files reopened' });
      });
      const admin: Promise<RunningAdmin | null> = options.admin ? startAdminPage(options, gw) : Promise.resolve(null);
      let stopping = false;
      const stop = (sig: string, code = 0) => {
        if (stopping) return;
        stopping = true;
        if (sig) out(`${sig}: stopping\n`);
        admin
          .catch(() => null)
          .then((a) => a?.close())
          .then(() => gw.stop())
          .then(
            () => process.exit(code),
            () => process.exit(1),
          );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      await admin.then(
        (a) => {
          if (!a) return;
          out(a.messages.join('\n') + '\n');
          if (a.warnings.length > 0) err(a.warnings.join('\n') + '\n');
        },
        (e: unknown) => {
          err(`postern: the administration page did not start: ${(e as Error).message}; stopping\n`);
          stop('', 1);
        },
      );
    });

}
