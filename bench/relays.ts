/**
 * The two systems under test, started fresh for every run with the same job: accept mail on a
 * loopback listener, keep it in a durable queue, deliver it to the bench sink(s).
 *
 * - Postern: the real process (`node bin/postern.js start`), configured beforehand with the
 *   CLI only (certconfig authority add, destconfig default ...), DNS from the bench's DNS
 *   server (MX → sink host name → sink address).
 * - Postfix: Debian's package in a temporary directory (test/peers/postfix.ts), as a relay:
 *   no local or virtual domains, transport_maps to the sink's address, the TLS policy table
 *   naming the name that the sink certificate must carry (`secure match=NAME`).
 *
 * Contract of Relay: host/port of its listener; `memory()` is its peak memory so far;
 * `cpuSeconds()` the CPU it used since start; `tlsEvidence()` counts what its own log says
 * about the outgoing TLS sessions; `stop()` ends every process and removes its directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startPostfix, type PostfixInstance } from '../test/peers/postfix.js';
import { POSTERN_BIN, runCliOk } from '../test/process.js';
import { cleanup, cpuSeconds, environmentPairs, groupMembers, startMemSampler, statusKb, stopChild } from './util.js';

export const ADDR = {
  posternListen: '127.0.40.1',
  postfixListen: '127.0.40.11',
  sink: '127.0.40.2',
  wrongName: '127.0.40.3',
  untrusted: '127.0.40.4',
  down: '127.0.40.5',
  dns: '127.0.40.53',
  /** 127.0.41.1 – 127.0.41.100: one sink address per destination domain. */
  domainSink: (k: number): string => `127.0.41.${k + 1}`,
};
export const PORT = { posternListen: 2701, postfixListen: 2702, sink: 2725, dns: 2753 };

export interface TlsEvidence {
  /** Outgoing sessions the relay logged as verified. */
  verified: number;
  /** Outgoing TLS sessions logged as not verified (anonymous/untrusted) or failed. */
  unverified: number;
  failed: number;
}

export interface Relay {
  name: 'Postern' | 'Postfix';
  host: string;
  port: number;
  /** Peak memory: Postern VmHWM of its process; Postfix peak Σ VmRSS / Σ Pss of its processes. */
  memory(): { rssKb: number; pssKb: number; how: string };
  cpuSeconds(): number;
  tlsEvidence(): Promise<TlsEvidence>;
  pid(): number;
  /** The end of its log, for error messages. */
  diagnostics(): Promise<string>;
  stop(): Promise<void>;
}

// ---- Postern ---------------------------------------------------------------------------

export interface PosternSetup {
  /** A data directory configured with the CLI and never started: copied for every run. */
  template: string;
}

/** Configures a Postern data directory exactly as an administrator would, with the CLI. */
export async function configurePostern(dir: string, o: { caFile: string; tls: boolean; concurrency: number }): Promise<PosternSetup> {
  const d = ['--data-dir', dir];
  await runCliOk(['certconfig', 'authority', 'add', o.caFile, ...d]);
  await runCliOk(['certconfig', 'authority', 'system', 'off', ...d]);
  await runCliOk(['destconfig', 'default', '--tls', o.tls ? 'required-verify-hosted' : 'no', '--concurrency', String(o.concurrency), ...d]);
  return { template: dir };
}

export interface PosternRunOptions {
  dataDir: string;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir', DIR]. */
  nodeArgs?: string[];
  /** Where it listens (default ADDR.posternListen:PORT.posternListen). */
  listen?: { host: string; port: number };
  /** Extra `postern start` arguments, e.g. ['--cluster', URL, '--node-name', N]. */
  args?: string[];
  /** DNS server HOST:PORT (default the bench's) and the port of the receiving servers (default the sink's). */
  dnsServer?: string;
  smtpPort?: number;
  config?: Record<string, unknown>;
}

/** As package.json's start script and contrib/postern.service set them. */
const POSTERN_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };

export async function startPosternRelay(setup: PosternSetup | undefined, o: PosternRunOptions): Promise<Relay & { child: ChildProcess; output: () => string; startedAt: number; readyAt: number; dataDir: string }> {
  if (setup) await cp(setup.template, o.dataDir, { recursive: true });
  const listen = o.listen ?? { host: ADDR.posternListen, port: PORT.posternListen };
  const args = [
    // As `npm start` and contrib/postern.service start it.
    '--max-semi-space-size=2',
    // POSTERN_BENCH_NODE_ARGS: node flags for every Postern the bench starts (experiments, e.g.
    // V8 heap sizes); after the default, as the last of a flag given twice is the one V8 takes.
    ...(process.env.POSTERN_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
    ...(o.nodeArgs ?? []),
    POSTERN_BIN,
    'start',
    '--data-dir',
    o.dataDir,
    '--listen',
    `${listen.host}:${listen.port}`,
    '--dns-server',
    o.dnsServer ?? `${ADDR.dns}:${PORT.dns}`,
    '--smtp-port',
    String(o.smtpPort ?? PORT.sink),
    '--hostname',
    'relay.bench.test',
    ...(o.args ?? []),
  ];
  if (o.config) {
    const f = path.join(o.dataDir, 'bench-config.json');
    await writeFile(f, JSON.stringify(o.config));
    args.push('--config', f);
  }
  const startedAt = Date.now();
  // The allocator settings `npm start` and contrib/postern.service give (docs/running-as-a-service.md).
  // POSTERN_BENCH_ENV="NAME=value ...": variables over those, for experiments (e.g. the allocator's).
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...POSTERN_MALLOC_ENV, ...environmentPairs(process.env.POSTERN_BENCH_ENV ?? '') } });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  cleanup.lastResort.add(kill);
  const unregister = cleanup.add(`postern pid ${child.pid}`, async () => {
    cleanup.lastResort.delete(kill);
    await stopChild(child, 30_000);
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`postern not listening after 60 s:\n${out}`)), 60_000);
    const check = (): void => {
      if (/Postern listening on /.test(out)) {
        clearTimeout(t);
        child.stdout.off('data', check);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code, sig) => {
      clearTimeout(t);
      reject(new Error(`postern exited (${code ?? sig}) before listening:\n${out}`));
    });
  });
  const readyAt = Date.now();
  const pid = child.pid!;
  const cpu0 = cpuSeconds(pid);
  let hwm = 0;
  const sampler = startMemSampler(() => [pid], 500);
  let stopped = false;
  return {
    name: 'Postern',
    host: listen.host,
    port: listen.port,
    dataDir: o.dataDir,
    child,
    output: () => out,
    startedAt,
    readyAt,
    pid: () => pid,
    diagnostics: async () => {
      const text = await readFile(path.join(o.dataDir, 'logs', 'mail.log'), 'utf8').catch(() => '');
      return `--- postern output ---\n${out.slice(-3000)}\n--- mail.log (end) ---\n${text.split('\n').slice(-30).join('\n')}`;
    },
    memory: () => {
      if (!stopped) hwm = Math.max(hwm, statusKb(pid, 'VmHWM'));
      const s = sampler.stop();
      return { rssKb: hwm, pssKb: s.peakPssKb, how: 'VmHWM of the postern process' };
    },
    cpuSeconds: () => cpuSeconds(pid) - cpu0,
    tlsEvidence: async () => {
      let text = '';
      try {
        text = await readFile(path.join(o.dataDir, 'logs', 'mail.log'), 'utf8');
      } catch {
        // no log yet
      }
      let verified = 0;
      let unverified = 0;
      let failed = 0;
      for (const line of text.split('\n')) {
        if (line.includes(' TLS success ')) {
          if (line.includes('(verified)')) verified++;
          else unverified++;
        } else if (line.includes(' TLS failed')) failed++;
      }
      return { verified, unverified, failed };
    },
    stop: async () => {
      hwm = Math.max(hwm, statusKb(pid, 'VmHWM'));
      sampler.stop();
      stopped = true;
      await unregister();
      if (child.exitCode !== 0 && child.signalCode !== null) throw new Error(`postern did not stop cleanly (${child.signalCode}):\n${out.slice(-2000)}`);
    },
  };
}

// ---- Postfix -----------------------------------------------------------------------------

export interface PostfixRoute {
  domain: string;
  address: string;
  /** Name the certificate must carry (policy `secure match=`); undefined: no TLS. */
  match?: string;
}

/** Writes the transport and TLS policy tables (texthash: no postmap needed). */
export async function writePostfixMaps(dir: string, routes: PostfixRoute[]): Promise<{ transport: string; policy: string }> {
  const transport = path.join(dir, 'pf-transport');
  const policy = path.join(dir, 'pf-tls-policy');
  await writeFile(transport, routes.map((r) => `${r.domain} smtp:[${r.address}]:${PORT.sink}\n`).join(''), { mode: 0o644 });
  await writeFile(
    policy,
    routes.map((r) => `[${r.address}]:${PORT.sink} ${r.match ? `secure match=${r.match}` : 'none'}\n`).join(''),
    { mode: 0o644 },
  );
  return { transport, policy };
}

export async function startPostfixRelay(o: { maps: { transport: string; policy: string }; caFile: string; tls: boolean; concurrency: number }): Promise<Relay & { instance: PostfixInstance }> {
  return startPostfixWith({
    transport_maps: `texthash:${o.maps.transport}`,
    default_destination_concurrency_limit: String(o.concurrency),
    smtp_tls_security_level: o.tls ? 'secure' : 'none',
    smtp_tls_CAfile: o.caFile,
    smtp_tls_policy_maps: `texthash:${o.maps.policy}`,
    smtp_tls_loglevel: '1',
    // Connection reuse for TLS sessions too (through tlsproxy), as Postern reuses connections.
    smtp_tls_connection_reuse: o.tls ? 'yes' : 'no',
    // Debian's master.cf has tlsproxy commented out; TLS connection reuse needs it.
  }, o.tls ? 'tlsproxy unix - - n - 0 tlsproxy' : undefined);
}

/**
 * Postfix as a relay with these main.cf parameters (beside the relay basics) and master.cf
 * lines; its Relay figures: Σ of its processes' memory and CPU, the TLS evidence of its log.
 */
export async function startPostfixWith(mainCf: Record<string, string>, masterCf?: string): Promise<Relay & { instance: PostfixInstance }> {
  const extra: Record<string, string> = {
    myhostname: 'relay-pf.bench.test',
    // A pure relay: nothing is delivered locally or to virtual mailboxes.
    virtual_mailbox_domains: '',
    relay_domains: '',
    smtp_helo_name: 'relay-pf.bench.test',
    ...mainCf,
  };
  const instance = await startPostfix({
    address: ADDR.postfixListen,
    port: PORT.postfixListen,
    hostname: 'relay-pf.bench.test',
    tls: 'none',
    delivery: 'discard',
    extraMainCf: extra,
    ...(masterCf ? { extraMasterCf: masterCf } : {}),
  });
  const unregister = cleanup.add(`postfix ${instance.dir}`, () => instance.stop());
  const masterPid = Number(readFileSync(path.join(instance.dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
  const members = (): number[] => groupMembers(masterPid);
  const cpuNow = (): number => cpuSeconds(masterPid, true) + members().filter((p) => p !== masterPid).reduce((s, p) => s + cpuSeconds(p), 0);
  const cpu0 = cpuNow();
  const sampler = startMemSampler(members, 250);
  let peak = { peakRssKb: 0, peakPssKb: 0 };
  let lastCpu = 0;
  return {
    name: 'Postfix',
    host: ADDR.postfixListen,
    port: PORT.postfixListen,
    instance,
    pid: () => masterPid,
    diagnostics: async () => `--- postfix maillog (end) ---\n${(await instance.log()).split('\n').slice(-40).join('\n')}`,
    memory: () => {
      peak = sampler.stop();
      return { rssKb: peak.peakRssKb, pssKb: peak.peakPssKb, how: 'peak of Σ VmRSS over the Postfix processes, sampled every 250 ms' };
    },
    cpuSeconds: () => (lastCpu = Math.max(lastCpu, cpuNow() - cpu0)),
    tlsEvidence: async () => {
      const text = await instance.log();
      let verified = 0;
      let unverified = 0;
      let failed = 0;
      // With connection reuse both tlsproxy and smtp log each session: count smtp's lines.
      for (const line of text.split('\n')) {
        if (!/ postfix\/smtp\[\d+\]: /.test(line)) continue;
        if (/Verified TLS connection established to/.test(line)) verified++;
        else if (/(Untrusted|Trusted|Anonymous) TLS connection established to/.test(line)) unverified++;
        else if (/(certificate verification failed|Server certificate not verified|TLS is required, but|certificate name mismatch|Cannot start TLS)/i.test(line)) failed++;
      }
      return { verified, unverified, failed };
    },
    stop: async () => {
      sampler.stop();
      await unregister();
    },
  };
}
