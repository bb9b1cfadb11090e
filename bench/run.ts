/**
 * `npm run bench`: Postern and Postfix measured in one run on the same work (never part of
 * `npm test`). docs/performance.md says what is measured, how, and the latest figures.
 *
 *   npm run bench -- [--scenario tls|plain|domains|lookup|queue-1m|cluster|all] [--messages N] [--runs K]
 *                    [--quick] [--size BYTES] [--sessions S] [--concurrency C] [--sink-workers W]
 *                    [--probe-seconds S] [--profile DIR] [--json FILE] [--no-postfix]
 *                    [--queue-messages N] [--queue-size BYTES] [--queue-max-minutes M]
 *                    [--down refused|silent] [--install]
 *
 * Every process and file the bench makes lives under one temporary directory or is a child
 * process registered for cleanup; both go at the end, on an error and on Ctrl-C.
 * Loopback addresses 127.0.40.x / 127.0.41.x only, ports 2700–2799.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TestCA } from '../test/peers/ca.js';
import { startDnsServer, type Zone } from '../test/peers/dns-server.js';
import type { InjectConfig, InjectResult } from './inject.js';
import { lookupBench, type LookupRow } from './lookup.js';
import { clusterScenario, clusterTable, type ClusterReport } from './cluster.js';
import { internetScenario, internetTable, type InternetReport } from './internet.js';
import { summariseProfile } from './profile.js';
import { ADDR, PORT, configurePostern, startPosternRelay, startPostfixRelay, writePostfixMaps, type PosternSetup, type PostfixRoute, type Relay, type TlsEvidence } from './relays.js';
import type { SinkConfig, SinkStats } from './sink.js';
import { runCliOk } from '../test/process.js';
import { cleanup, fmt, forkBench, installSignalHandlers, log, median, request, sleep, statusKb, tempDir, waitForQuiet } from './util.js';

// ---- options ---------------------------------------------------------------------------------

type ScenarioName = 'tls' | 'plain' | 'domains' | 'lookup' | 'queue-1m' | 'cluster' | 'internet';
const ALL: ScenarioName[] = ['tls', 'plain', 'domains', 'lookup', 'queue-1m', 'cluster', 'internet'];

interface Options {
  scenarios: ScenarioName[];
  messages: number;
  runs: number;
  quick: boolean;
  size: number;
  sessions: number;
  concurrency: number;
  sinkWorkers: number;
  probeSeconds: number;
  profile?: string;
  json?: string;
  postfix: boolean;
  queueMessages: number;
  queueSize: number;
  queueMaxMinutes: number;
  down: 'refused' | 'silent';
  install: boolean;
  domains: number;
  internetMessages: number;
  internetDomains: number;
  internetHosts: number;
  internetMaxMinutes: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    scenarios: ALL,
    messages: 20_000,
    runs: 3,
    quick: false,
    size: 10_240,
    sessions: 20,
    concurrency: 20,
    sinkWorkers: 1,
    probeSeconds: 10,
    postfix: true,
    queueMessages: 1_000_000,
    queueSize: 1024,
    queueMaxMinutes: 30,
    down: 'refused',
    install: false,
    domains: 100,
    internetMessages: 100_000,
    internetDomains: 10_000,
    internetHosts: 1000,
    internetMaxMinutes: 30,
  };
  const set = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = (): number => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a}: not a number`);
      return v;
    };
    set.add(a);
    switch (a) {
      case '--scenario': {
        const v = val();
        if (v === 'all') o.scenarios = ALL;
        else {
          const list = v.split(',') as ScenarioName[];
          for (const s of list) if (!ALL.includes(s)) throw new Error(`--scenario: ${s} is not one of ${ALL.join('|')}|all`);
          o.scenarios = list;
        }
        break;
      }
      case '--messages': o.messages = num(); break;
      case '--runs': o.runs = Math.max(1, num()); break;
      case '--quick': o.quick = true; break;
      case '--size': o.size = num(); break;
      case '--sessions': o.sessions = Math.max(1, num()); break;
      case '--concurrency': o.concurrency = Math.max(1, num()); break;
      case '--sink-workers': o.sinkWorkers = Math.max(1, num()); break;
      case '--probe-seconds': o.probeSeconds = num(); break;
      case '--profile': o.profile = path.resolve(val()); break;
      case '--json': o.json = path.resolve(val()); break;
      case '--no-postfix': o.postfix = false; break;
      case '--queue-messages': o.queueMessages = num(); break;
      case '--queue-size': o.queueSize = num(); break;
      case '--queue-max-minutes': o.queueMaxMinutes = num(); break;
      case '--down': {
        const v = val();
        if (v !== 'refused' && v !== 'silent') throw new Error('--down: refused|silent');
        o.down = v;
        break;
      }
      case '--install': o.install = true; break;
      case '--internet-messages': o.internetMessages = num(); break;
      case '--internet-domains': o.internetDomains = num(); break;
      case '--internet-hosts': o.internetHosts = num(); break;
      case '--internet-max-minutes': o.internetMaxMinutes = num(); break;
      case '--help':
      case '-h':
        process.stdout.write(readHelp());
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (o.quick) {
    if (!set.has('--messages')) o.messages = 200;
    if (!set.has('--runs')) o.runs = 1;
    if (!set.has('--queue-messages')) o.queueMessages = 1000;
    if (!set.has('--probe-seconds')) o.probeSeconds = 1;
    if (!set.has('--queue-max-minutes')) o.queueMaxMinutes = 1;
    if (!set.has('--internet-messages')) o.internetMessages = 2000;
    if (!set.has('--internet-domains')) o.internetDomains = 500;
    if (!set.has('--internet-hosts')) o.internetHosts = 100;
    if (!set.has('--internet-max-minutes')) o.internetMaxMinutes = 5;
  }
  return o;
}

function readHelp(): string {
  return `npm run bench -- [options]
  --scenario tls|plain|domains|lookup|queue-1m|cluster|internet|all   (comma-separated list allowed; default all)
  --messages N          messages per rate run (default 20000)
  --runs K              runs per scenario and system; the table gives medians (default 3)
  --quick               small smoke run of every scenario (about 12 minutes: the internet world waits up to 5 min per system)
  --size BYTES          message size (default 10240)
  --sessions S          injector sessions with connection reuse (default 20)
  --concurrency C       destination concurrency for both relays (default 20)
  --sink-workers W      sink processes (node:cluster; default 1)
  --probe-seconds S     length of each accept-latency probe at half of Postern's peak (default 10)
  --profile DIR         one extra Postern run per scenario under node --cpu-prof; profiles kept in DIR
  --json FILE           write every raw figure as JSON
  --no-postfix          measure Postern only
  --queue-messages N    queue-1m: messages to queue for a destination that is down (default 1000000)
  --queue-size BYTES    queue-1m: message size (default 1024)
  --queue-max-minutes M queue-1m: stop injecting after M minutes and report what was reached (default 30)
  --down refused|silent queue-1m: destination refuses connections, or accepts and never greets
  --install             apt-get install what is missing (postfix, redis-server, ...) and continue
  --internet-messages N internet: messages (default 100000), over --internet-domains D (default 10000)
                        recipient domains on --internet-hosts H MX hosts (default 1000)
  --internet-max-minutes M  internet: stop waiting for the deliverable mail after M minutes (default 30)
cluster: Postern alone, 1 node on Redis and 3 nodes on Redis (a local redis-server), plain delivery
  to one sink under one system-wide limit; --messages, --sessions, --size and --runs apply.
`;
}

// ---- environment ----------------------------------------------------------------------------

const NEEDED = [
  ['/usr/sbin/postfix', 'postfix'],
  ['/usr/sbin/smtp-source', 'postfix'],
  ['/usr/bin/script', 'bsdutils'],
  ['/usr/bin/getent', 'libc-bin'],
] as const;

function checkEnvironment(o: Options): void {
  const needed: (readonly [string, string])[] = [...NEEDED, ...(o.scenarios.includes('cluster') ? [['/usr/bin/redis-server', 'redis-server'] as const] : [])];
  const missing = needed.filter(([f]) => !existsSync(f));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map(([, p]) => p))];
  const cmd =
    `debconf-set-selections <<'EOF'\npostfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string testbed.invalid\nEOF\n` +
    `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  if (!o.install) {
    throw new Error(`missing: ${missing.map(([f]) => f).join(', ')}. Install with (as root):\n${cmd}\nor run the bench with --install.`);
  }
  log(`installing ${pkgs.join(' ')} ...`);
  const r = spawnSync('bash', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error('apt-get install failed');
}

// ---- the bench's world: PKI, DNS, Postfix maps, Postern templates ---------------------------

interface World {
  dir: string;
  caFile: string;
  ca: TestCA;
  sinkCert: { key: string; cert: string };
  wrongCert: { key: string; cert: string };
  untrustedCert: { key: string; cert: string };
  domains: string[];
  postfixMaps: { tls: { transport: string; policy: string }; plain: { transport: string; policy: string } };
  posternTemplates: { tls: PosternSetup; plain: PosternSetup };
}

const SINK_NAME = 'mx1.sink.test';
const domainName = (k: number): string => `d${k}.bench.test`;
const domainMx = (k: number): string => `mx-d${k}.sink.test`;

async function makeWorld(o: Options): Promise<World> {
  const { dir } = await tempDir('postern-bench-');
  log(`working directory ${dir}`);
  const ca = await TestCA.create('Postern Bench CA');
  const domains = Array.from({ length: o.domains }, (_, k) => domainName(k));
  const sink = await ca.issue({ cn: SINK_NAME, dnsNames: [SINK_NAME, 'mx-down.sink.test', ...domains.map((_, k) => domainMx(k))] });
  const wrong = await ca.issue({ cn: 'other.invalid', dnsNames: ['other.invalid'] });
  const unknownCa = await TestCA.create('Unknown CA');
  const untrusted = await unknownCa.issue({ cn: 'mx-untrusted.sink.test', dnsNames: ['mx-untrusted.sink.test'] });
  const caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, ca.certPem, { mode: 0o644 });

  const zone: Zone = {
    'bench.test': { MX: [{ preference: 10, exchange: SINK_NAME }] },
    [SINK_NAME]: { A: [ADDR.sink] },
    'wrongname.bench.test': { MX: [{ preference: 10, exchange: 'mx-wrong.sink.test' }] },
    'mx-wrong.sink.test': { A: [ADDR.wrongName] },
    'untrusted.bench.test': { MX: [{ preference: 10, exchange: 'mx-untrusted.sink.test' }] },
    'mx-untrusted.sink.test': { A: [ADDR.untrusted] },
    'down.bench.test': { MX: [{ preference: 10, exchange: 'mx-down.sink.test' }] },
    'mx-down.sink.test': { A: [ADDR.down] },
  };
  domains.forEach((d, k) => {
    zone[d] = { MX: [{ preference: 10, exchange: domainMx(k) }] };
    zone[domainMx(k)] = { A: [ADDR.domainSink(k)] };
  });
  const dns = await startDnsServer({ zone, host: ADDR.dns, port: PORT.dns });
  cleanup.add('dns server', () => dns.close());

  const routes = (tls: boolean): PostfixRoute[] => [
    { domain: 'bench.test', address: ADDR.sink, match: tls ? SINK_NAME : undefined },
    { domain: 'wrongname.bench.test', address: ADDR.wrongName, match: tls ? 'mx-wrong.sink.test' : undefined },
    { domain: 'untrusted.bench.test', address: ADDR.untrusted, match: tls ? 'mx-untrusted.sink.test' : undefined },
    { domain: 'down.bench.test', address: ADDR.down, match: tls ? 'mx-down.sink.test' : undefined },
    ...domains.map((d, k) => ({ domain: d, address: ADDR.domainSink(k), match: tls ? domainMx(k) : undefined })),
  ];
  await mkdir(path.join(dir, 'pf-tls'), { mode: 0o755 });
  await mkdir(path.join(dir, 'pf-plain'), { mode: 0o755 });
  const postfixMaps = {
    tls: await writePostfixMaps(path.join(dir, 'pf-tls'), routes(true)),
    plain: await writePostfixMaps(path.join(dir, 'pf-plain'), routes(false)),
  };
  log('configuring Postern templates with the CLI (certconfig authority add, destconfig default ...)');
  const [tlsT, plainT] = await Promise.all([
    configurePostern(path.join(dir, 'postern-template-tls'), { caFile, tls: true, concurrency: o.concurrency }),
    configurePostern(path.join(dir, 'postern-template-plain'), { caFile, tls: false, concurrency: o.concurrency }),
  ]);
  return {
    dir,
    caFile,
    ca,
    sinkCert: { key: sink.keyPem, cert: sink.chainPem },
    wrongCert: { key: wrong.keyPem, cert: wrong.chainPem },
    untrustedCert: { key: untrusted.keyPem, cert: untrusted.chainPem },
    domains,
    postfixMaps,
    posternTemplates: { tls: tlsT, plain: plainT },
  };
}

// ---- sinks and injectors ------------------------------------------------------------------

interface Sink {
  stats(): Promise<SinkStats>;
  reset(): Promise<void>;
  pid: number;
  stop(): Promise<void>;
}

async function startSink(cfg: SinkConfig): Promise<Sink> {
  const { child, stop } = forkBench('sink', [JSON.stringify(cfg)]);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('sink not ready after 15 s')), 15_000);
    child.on('message', (m: { ready?: boolean }) => {
      if (m.ready) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (c) => reject(new Error(`sink exited (${c}) before it was ready`)));
  });
  return {
    pid: child.pid!,
    stats: () => request<SinkStats>(child, { cmd: 'stats' }, 30_000),
    reset: async () => {
      await request(child, { cmd: 'reset' }, 30_000);
    },
    stop,
  };
}

async function runInjector(cfg: InjectConfig, onProgress?: (sent: number, at: number) => void): Promise<InjectResult> {
  const { child, stop } = forkBench('inject');
  if (onProgress) child.on('message', (m: { progress?: number; at?: number }) => m.progress !== undefined && onProgress(m.progress, m.at!));
  try {
    return await request<InjectResult>(child, { cmd: 'run', ...cfg }, 6 * 3600_000);
  } finally {
    await stop();
  }
}

/** smtp-source straight at a server: messages per second (used for the plain sink's ceiling). */
function runSmtpSource(host: string, port: number, n: number, sessions: number, size: number): Promise<{ rate: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/sbin/smtp-source', ['-s', String(sessions), '-d', '-m', String(n), '-l', String(size), '-f', 'sender@client.bench.test', '-t', 'rcpt@bench.test', `${host}:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    const unregister = cleanup.add('smtp-source', () => {
      child.kill('SIGKILL');
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      void unregister();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`smtp-source exited ${code}: ${err}`));
      else resolve({ rate: n / s, seconds: s });
    });
  });
}

/** Waits until the sink counted `n` messages; fails when nothing moved for `stallMs`. */
async function waitDelivered(sink: Sink, n: number, stallMs = 60_000): Promise<SinkStats> {
  let last = -1;
  let lastMove = Date.now();
  for (;;) {
    const s = await sink.stats();
    if (s.messages >= n) return s;
    if (s.messages !== last) {
      last = s.messages;
      lastMove = Date.now();
    } else if (Date.now() - lastMove > stallMs) {
      throw new Error(`delivery stalled: ${s.messages} of ${n} messages at the sink, nothing new for ${stallMs / 1000} s`);
    }
    await sleep(100);
  }
}

// ---- one measured run -----------------------------------------------------------------------

interface RunResult {
  system: 'Postern' | 'Postfix';
  injected: number;
  failed: number;
  injectRate: number;
  e2eRate: number;
  latencyFull: InjectResult['latencyMs'];
  peakRssMb: number;
  peakPssMb: number;
  memHow: string;
  cpuSeconds: number;
  tls: TlsEvidence;
  /** 1-minute load average of the machine at the end of the run (others' work included). */
  load: number;
  /** How long the run waited for a quiet machine before it started, and the CPUs' busy share then. */
  quietWaitSeconds: number;
  busyBefore: number;
  sink: Pick<SinkStats, 'messages' | 'sessions' | 'tlsSessions' | 'sni' | 'protocols'>;
  errors: string[];
}

interface ProbeResult {
  system: 'Postern' | 'Postfix';
  rate: number;
  sent: number;
  achievedRate: number;
  latency: InjectResult['latencyMs'];
}

interface ScenarioDef {
  name: 'tls' | 'plain' | 'domains';
  tls: boolean;
  domains: string[];
  sinkAddresses: string[];
}

type SystemName = 'Postern' | 'Postfix';

async function startRelay(system: SystemName, world: World, sc: ScenarioDef, runDir: string, nodeArgs?: string[]): Promise<Relay> {
  if (system === 'Postern') {
    return startPosternRelay(sc.tls ? world.posternTemplates.tls : world.posternTemplates.plain, { dataDir: runDir, nodeArgs });
  }
  return startPostfixRelay({ maps: sc.tls ? world.postfixMaps.tls : world.postfixMaps.plain, caFile: world.caFile, tls: sc.tls, concurrency: 20 });
}

let runSeq = 0;

async function rateRun(system: SystemName, o: Options, world: World, sc: ScenarioDef, sink: Sink, nodeArgs?: string[]): Promise<RunResult> {
  await sink.reset();
  // Each system starts on a quiet machine, not in what the previous run left behind.
  const quiet = await waitForQuiet();
  const runDir = path.join(world.dir, `run-${++runSeq}-${system.toLowerCase()}`);
  const relay = await startRelay(system, world, sc, runDir, nodeArgs);
  try {
    const inj = await runInjector({
      host: relay.host,
      port: relay.port,
      sessions: o.sessions,
      messages: o.messages,
      size: o.size,
      domains: sc.domains,
      rate: 0,
      messagesPerConnection: 0,
    });
    if (inj.sent === 0) throw new Error(`${system}: nothing injected: ${inj.errors.join('; ')}`);
    const s = await waitDelivered(sink, inj.sent).catch(async (e: Error) => {
      throw new Error(`${system}: ${e.message}\n${await relay.diagnostics()}`);
    });
    const mem = relay.memory();
    const cpu = relay.cpuSeconds();
    const tls = await relay.tlsEvidence();
    return {
      system,
      injected: inj.sent,
      failed: inj.failed,
      injectRate: (inj.sent * 1000) / (inj.endAt - inj.startAt),
      e2eRate: (inj.sent * 1000) / (s.lastAt - inj.startAt),
      latencyFull: inj.latencyMs,
      peakRssMb: mem.rssKb / 1024,
      peakPssMb: mem.pssKb / 1024,
      memHow: mem.how,
      cpuSeconds: cpu,
      tls,
      load: os.loadavg()[0]!,
      quietWaitSeconds: quiet.waitedMs / 1000,
      busyBefore: quiet.busy,
      sink: { messages: s.messages, sessions: s.sessions, tlsSessions: s.tlsSessions, sni: s.sni, protocols: s.protocols },
      errors: inj.errors,
    };
  } finally {
    await relay.stop();
  }
}

async function latencyProbe(system: SystemName, o: Options, world: World, sc: ScenarioDef, sink: Sink, rate: number): Promise<ProbeResult> {
  await sink.reset();
  const runDir = path.join(world.dir, `run-${++runSeq}-${system.toLowerCase()}-probe`);
  const relay = await startRelay(system, world, sc, runDir);
  try {
    const n = Math.max(50, Math.round(rate * o.probeSeconds));
    const inj = await runInjector({
      host: relay.host,
      port: relay.port,
      sessions: o.sessions,
      messages: n,
      size: o.size,
      domains: sc.domains,
      rate,
      messagesPerConnection: 0,
    });
    return { system, rate, sent: inj.sent, achievedRate: (inj.sent * 1000) / (inj.endAt - inj.startAt), latency: inj.latencyMs };
  } finally {
    await relay.stop();
  }
}

/** Sends one message to the good sink and one to each decoy; the decoys must get none. */
async function verificationCheck(system: SystemName, o: Options, world: World, sc: ScenarioDef, sink: Sink): Promise<string> {
  const wrong = await startSink({ addresses: [ADDR.wrongName], port: PORT.sink, hostname: 'mx-wrong.sink.test', tls: world.wrongCert, workers: 1 });
  const untrusted = await startSink({ addresses: [ADDR.untrusted], port: PORT.sink, hostname: 'mx-untrusted.sink.test', tls: world.untrustedCert, workers: 1 });
  await sink.reset();
  const relay = await startRelay(system, world, sc, path.join(world.dir, `run-${++runSeq}-${system.toLowerCase()}-verify`));
  try {
    const inj = await runInjector({
      host: relay.host,
      port: relay.port,
      sessions: 1,
      messages: 3,
      size: 2000,
      domains: ['bench.test', 'wrongname.bench.test', 'untrusted.bench.test'],
      rate: 0,
      messagesPerConnection: 0,
    });
    if (inj.sent !== 3) throw new Error(`${system}: verification check: ${inj.sent} of 3 accepted: ${inj.errors.join('; ')}`);
    const good = await waitDelivered(sink, 1, 20_000).catch(async (e: Error) => {
      throw new Error(`${system}: ${e.message}\n${await relay.diagnostics()}`);
    });
    // Give the decoys' sessions time to happen (both relays try them at once).
    const until = Date.now() + 15_000;
    let w = await wrong.stats();
    let u = await untrusted.stats();
    while ((w.tlsSessions === 0 || u.sessions === 0) && Date.now() < until) {
      await sleep(250);
      w = await wrong.stats();
      u = await untrusted.stats();
    }
    await sleep(1000);
    w = await wrong.stats();
    u = await untrusted.stats();
    const ev = await relay.tlsEvidence();
    const text =
      `${system}: good sink got ${good.messages} message(s) over ${good.tlsSessions} TLS session(s) (SNI ${JSON.stringify(good.sni)}); ` +
      `wrong-name sink: ${w.tlsSessions} TLS session(s), ${w.messages} message(s); untrusted-CA sink: ${u.tlsSessions} TLS session(s), ${u.messages} message(s); ` +
      `relay log: ${ev.verified} verified, ${ev.unverified} unverified, ${ev.failed} failed`;
    if (w.messages > 0 || u.messages > 0) throw new Error(`VERIFICATION NOT ENFORCED: ${text}`);
    if (w.sessions === 0 || u.sessions === 0) throw new Error(`verification check inconclusive (a decoy was never contacted): ${text}`);
    return text;
  } finally {
    await relay.stop();
    await Promise.all([wrong.stop(), untrusted.stop()]);
  }
}

interface ScenarioReport {
  name: string;
  runs: RunResult[];
  probes: ProbeResult[];
  probeRate: number;
  ceilings: { what: string; rate: number }[];
  verification: string[];
  profile?: string;
}

async function deliveryScenario(name: 'tls' | 'plain' | 'domains', o: Options, world: World): Promise<ScenarioReport> {
  const sc: ScenarioDef =
    name === 'domains'
      ? { name, tls: true, domains: world.domains, sinkAddresses: world.domains.map((_, k) => ADDR.domainSink(k)) }
      : { name, tls: name === 'tls', domains: ['bench.test'], sinkAddresses: [ADDR.sink] };
  log(`scenario ${name}: starting sink on ${sc.sinkAddresses.length} address(es), TLS ${sc.tls ? 'on' : 'off'}`);
  const sink = await startSink({ addresses: sc.sinkAddresses, port: PORT.sink, hostname: SINK_NAME, tls: sc.tls ? world.sinkCert : undefined, workers: o.sinkWorkers });
  const report: ScenarioReport = { name, runs: [], probes: [], probeRate: 0, ceilings: [], verification: [] };
  const systems: SystemName[] = o.postfix ? ['Postern', 'Postfix'] : ['Postern'];
  try {
    // The sink's own ceiling, with the same load shape (S sessions, connection reuse).
    if (name === 'plain') {
      await sink.reset();
      const ss = await runSmtpSource(ADDR.sink, PORT.sink, o.messages, o.sessions, o.size);
      report.ceilings.push({ what: `smtp-source -s ${o.sessions} -d -m ${o.messages} -l ${o.size} → plain sink`, rate: ss.rate });
    }
    await sink.reset();
    const c = await runInjector({
      host: sc.sinkAddresses[0]!,
      port: PORT.sink,
      sessions: o.sessions,
      messages: o.messages,
      size: o.size,
      domains: ['bench.test'],
      rate: 0,
      messagesPerConnection: sc.tls ? 50 : 0,
      starttls: sc.tls ? { ca: world.ca.certPem, servername: name === 'domains' ? domainMx(0) : SINK_NAME } : undefined,
    });
    report.ceilings.push({
      what: `bench injector (Node, ${o.sessions} sessions${sc.tls ? ', STARTTLS verified, 50 msg/connection' : ''}) → ${sc.tls ? 'TLS' : 'plain'} sink`,
      rate: (c.sent * 1000) / (c.endAt - c.startAt),
    });
    log(`scenario ${name}: sink ceiling ${report.ceilings.map((x) => `${fmt(x.rate)} msg/s (${x.what})`).join('; ')}`);

    if (sc.tls && name === 'tls') {
      for (const sys of systems) {
        const v = await verificationCheck(sys, o, world, sc, sink);
        log(v);
        report.verification.push(v);
      }
    }

    for (let r = 0; r < o.runs; r++) {
      for (const sys of r % 2 === 0 ? systems : [...systems].reverse()) {
        log(`scenario ${name}: run ${r + 1}/${o.runs} ${sys}: ${o.messages} messages ...`);
        const res = await rateRun(sys, o, world, sc, sink);
        log(
          `  ${sys}: injected ${fmt(res.injectRate)} msg/s, end-to-end ${fmt(res.e2eRate)} msg/s, accept p50/p99 ${fmt(res.latencyFull.p50, 1)}/${fmt(res.latencyFull.p99, 1)} ms, ` +
            `peak ${fmt(res.peakRssMb)} MB, CPU ${fmt(res.cpuSeconds, 1)} s, TLS ${JSON.stringify(res.tls)}, sink sessions ${res.sink.sessions} (TLS ${res.sink.tlsSessions})`,
        );
        report.runs.push(res);
      }
    }

    const posternRate = median(report.runs.filter((x) => x.system === 'Postern').map((x) => x.injectRate));
    report.probeRate = Math.max(10, Math.round(posternRate / 2));
    for (let r = 0; r < o.runs; r++) {
      for (const sys of systems) {
        log(`scenario ${name}: latency probe ${r + 1}/${o.runs} ${sys} at ${report.probeRate} msg/s for ${o.probeSeconds} s ...`);
        const p = await latencyProbe(sys, o, world, sc, sink, report.probeRate);
        log(`  ${sys}: ${p.sent} sent at ${fmt(p.achievedRate)} msg/s, accept p50/p99 ${fmt(p.latency.p50, 1)}/${fmt(p.latency.p99, 1)} ms`);
        report.probes.push(p);
      }
    }

    if (o.profile) {
      const dir = path.join(o.profile, name);
      await mkdir(dir, { recursive: true });
      log(`scenario ${name}: profiling run (Postern under --cpu-prof, not part of the table) ...`);
      await rateRun('Postern', o, world, sc, sink, ['--cpu-prof', '--cpu-prof-dir', dir]);
      const file = newestProfile(dir);
      if (file) report.profile = summariseProfile(file);
    }
  } finally {
    await sink.stop();
  }
  return report;
}

function newestProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  return files.length ? path.join(dir, files[files.length - 1]!) : undefined;
}

// ---- queue-1m ------------------------------------------------------------------------------

interface QueueReport {
  target: number;
  size: number;
  down: string;
  queued: number;
  injectSeconds: number;
  injectRate: number;
  peakRssMb: number;
  rssAtEndMb: number;
  milestones: { queued: number; seconds: number; rssMb: number; hwmMb: number }[];
  stopSeconds: number;
  restartListeningSeconds: number;
  firstDeliverySeconds: number;
  /** When the earliest waiting recipient was due, seconds after the restart (0 = already due). */
  firstDueSeconds: number;
  /** When `queue delivernow` had returned, seconds after the restart (NaN: not needed). */
  delivernowSeconds: number;
  waiting: number;
  alreadyTried: number;
  deliveredIn10s: number;
  deliveredIn30s: number;
  rssAfterRestartMb: number;
  profile?: string;
  reachedCap: boolean;
}

async function queueScenario(o: Options, world: World): Promise<QueueReport> {
  const n = o.queueMessages;
  log(`scenario queue-1m: queueing ${fmt(n)} messages of ${o.queueSize} bytes for down.bench.test (destination ${o.down}), at most ${o.queueMaxMinutes} min`);
  let silent: Sink | undefined;
  if (o.down === 'silent') silent = await startSink({ addresses: [ADDR.down], port: PORT.sink, hostname: 'mx-down.sink.test', workers: 1, silent: true });
  const dataDir = path.join(world.dir, 'queue-1m');
  const profDir = o.profile ? path.join(o.profile, 'queue-1m') : undefined;
  if (profDir) await mkdir(profDir, { recursive: true });
  const nodeArgs = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '5000'] : undefined;
  const relay = await startPosternRelay(world.posternTemplates.tls, { dataDir, nodeArgs });
  const milestones: QueueReport['milestones'] = [];
  const t0 = Date.now();
  let nextMark = Math.min(n, 100_000, Math.max(1, Math.round(n / 10)));
  const step = nextMark;
  let lastLog = 0;
  const inj = await runInjector(
    { host: relay.host, port: relay.port, sessions: o.sessions, messages: n, size: o.queueSize, domains: ['down.bench.test'], rate: 0, messagesPerConnection: 0, maxMs: o.queueMaxMinutes * 60_000 },
    (sent) => {
      const rss = statusKb(relay.pid(), 'VmRSS') / 1024;
      const hwm = statusKb(relay.pid(), 'VmHWM') / 1024;
      if (sent >= nextMark) {
        milestones.push({ queued: sent, seconds: (Date.now() - t0) / 1000, rssMb: rss, hwmMb: hwm });
        nextMark += step;
      }
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        log(`  queued ${fmt(sent)} after ${fmt((Date.now() - t0) / 1000)} s, Postern RSS ${fmt(rss)} MB (peak ${fmt(hwm)} MB)`);
      }
    },
  );
  const injectSeconds = (inj.endAt - inj.startAt) / 1000;
  const rssAtEnd = statusKb(relay.pid(), 'VmRSS') / 1024;
  const peak = relay.memory().rssKb / 1024;
  milestones.push({ queued: inj.sent, seconds: (Date.now() - t0) / 1000, rssMb: rssAtEnd, hwmMb: peak });
  log(`  queued ${fmt(inj.sent)} in ${fmt(injectSeconds)} s (${fmt(inj.sent / injectSeconds)} msg/s), peak RSS ${fmt(peak)} MB, errors: ${inj.errors.slice(0, 3).join('; ')}`);
  const ts = Date.now();
  await relay.stop();
  const stopSeconds = (Date.now() - ts) / 1000;
  let profile: string | undefined;
  if (profDir) {
    const f = newestProfile(profDir);
    if (f) profile = summariseProfile(f);
  }
  await silent?.stop();

  // What the queue holds now: how many recipients wait, and when the first one is due again.
  const Database = (await import('better-sqlite3')).default;
  const qdb = new Database(path.join(dataDir, 'queue.db'), { readonly: true });
  const q = qdb.prepare(`SELECT COUNT(*) AS n, MIN(next_attempt) AS first, SUM(attempts > 0) AS tried FROM recipients WHERE state = 'queued'`).get() as { n: number; first: number | null; tried: number };
  qdb.close();
  log(`  queue on disk: ${fmt(q.n)} recipients waiting (${fmt(q.tried)} already tried), first due at ${q.first ? new Date(q.first).toISOString() : 'n/a'}`);

  // The destination comes back; Postern restarts on the same data directory.
  const sink = await startSink({ addresses: [ADDR.down], port: PORT.sink, hostname: 'mx-down.sink.test', tls: world.sinkCert, workers: o.sinkWorkers });
  try {
    const again = await startPosternRelay(undefined, { dataDir });
    try {
      const restartListening = (again.readyAt - again.startedAt) / 1000;
      const firstDueSeconds = q.first === null ? NaN : Math.max(0, (q.first - again.startedAt) / 1000);
      // Deferred recipients wait for their retry time; an operator whose destination is back
      // says so with `queue delivernow` (SPEC §5), as the bench does here.
      let delivernowSeconds = NaN;
      if (q.tried > 0) {
        await runCliOk(['queue', 'delivernow', 'down.bench.test', '--data-dir', dataDir]);
        delivernowSeconds = (Date.now() - again.startedAt) / 1000;
        log(`  queue delivernow down.bench.test done ${fmt(delivernowSeconds, 2)} s after the restart`);
      }
      let first = NaN;
      let in10 = 0;
      let in30 = 0;
      for (;;) {
        const s = await sink.stats();
        const el = (Date.now() - again.startedAt) / 1000;
        if (s.messages > 0 && Number.isNaN(first)) first = (s.firstAt - again.startedAt) / 1000;
        if (el <= 10) in10 = s.messages;
        in30 = s.messages;
        if (el >= (o.quick ? 8 : 90) || s.messages >= inj.sent) break;
        await sleep(200);
      }
      const rssAfter = again.memory().rssKb / 1024;
      log(`  restart: listening after ${fmt(restartListening, 2)} s, first delivery after ${fmt(first, 2)} s, ${fmt(in10)} delivered in 10 s, ${fmt(in30)} in ${o.quick ? 8 : 90} s, peak RSS ${fmt(rssAfter)} MB`);
      return {
        target: n,
        size: o.queueSize,
        down: o.down,
        queued: inj.sent,
        injectSeconds,
        injectRate: inj.sent / injectSeconds,
        peakRssMb: peak,
        rssAtEndMb: rssAtEnd,
        milestones,
        stopSeconds,
        restartListeningSeconds: restartListening,
        firstDeliverySeconds: first,
        firstDueSeconds,
        delivernowSeconds,
        waiting: q.n,
        alreadyTried: q.tried,
        deliveredIn10s: in10,
        deliveredIn30s: in30,
        rssAfterRestartMb: rssAfter,
        profile,
        reachedCap: inj.sent < n,
      };
    } finally {
      await again.stop();
    }
  } finally {
    await sink.stop();
  }
}

// ---- report -----------------------------------------------------------------------------------

function gitDescribe(): string {
  const head = spawnSync('git', ['log', '-1', '--format=%h %cI'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--short', 'src'], { encoding: 'utf8' });
  const n = dirty.stdout ? dirty.stdout.trim().split('\n').filter(Boolean).length : 0;
  return head.status === 0 ? `git ${head.stdout.trim()}${n ? `, ${n} modified file(s) in src/` : ''}` : 'not a git checkout';
}

function machine(): string {
  const mem = os.totalmem() / 2 ** 30;
  const cpu = os.cpus()[0]?.model ?? '?';
  return `${os.cpus().length} CPU (${cpu}), ${mem.toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

function scenarioTable(reports: ScenarioReport[]): string {
  const lines: string[] = [];
  lines.push('| scenario | system | injected msg/s | end-to-end msg/s | accept p50 / p99 ms (half of Postern peak) | accept p50 / p99 ms (full load) | peak RSS MB | peak PSS MB | CPU s per 1k msg |');
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const ratios: string[] = [];
  for (const r of reports) {
    const per = (sys: SystemName) => {
      const runs = r.runs.filter((x) => x.system === sys);
      const probes = r.probes.filter((x) => x.system === sys);
      if (runs.length === 0) return undefined;
      return {
        inj: median(runs.map((x) => x.injectRate)),
        e2e: median(runs.map((x) => x.e2eRate)),
        p50: median(probes.map((x) => x.latency.p50)),
        p99: median(probes.map((x) => x.latency.p99)),
        f50: median(runs.map((x) => x.latencyFull.p50)),
        f99: median(runs.map((x) => x.latencyFull.p99)),
        rss: median(runs.map((x) => x.peakRssMb)),
        pss: median(runs.map((x) => x.peakPssMb)),
        cpu: median(runs.map((x) => (x.cpuSeconds * 1000) / x.injected)),
      };
    };
    const a = per('Postern');
    const b = per('Postfix');
    for (const [sys, v] of [['Postern', a], ['Postfix', b]] as const) {
      if (!v) continue;
      lines.push(
        `| ${r.name} | ${sys} | ${fmt(v.inj)} | ${fmt(v.e2e)} | ${fmt(v.p50, 1)} / ${fmt(v.p99, 1)} | ${fmt(v.f50, 1)} / ${fmt(v.f99, 1)} | ${fmt(v.rss)}${sys === 'Postfix' ? ' (Σ)' : ''} | ${fmt(v.pss)}${sys === 'Postfix' ? ' (Σ)' : ''} | ${fmt(v.cpu, 2)} |`,
      );
    }
    if (a && b) {
      ratios.push(
        `| ${r.name} | ${(a.inj / b.inj).toFixed(2)} | ${(a.e2e / b.e2e).toFixed(2)} | ${(a.p99 / b.p99).toFixed(2)} | ${(a.f99 / b.f99).toFixed(2)} | ${(a.rss / b.rss).toFixed(2)} | ${(a.pss / b.pss).toFixed(2)} | ${(a.cpu / b.cpu).toFixed(2)} |`,
      );
    }
  }
  if (ratios.length) {
    lines.push('');
    lines.push('Ratios Postern / Postfix (medians):');
    lines.push('');
    lines.push('| scenario | injected | end-to-end | accept p99 (half peak) | accept p99 (full load) | peak RSS | peak PSS | CPU per msg |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    lines.push(...ratios);
  }
  return lines.join('\n');
}

function targets(reports: ScenarioReport[], queue: QueueReport | undefined, lookup: LookupRow[] | undefined): string[] {
  const out: string[] = [];
  const tls = reports.find((r) => r.name === 'tls');
  if (tls) {
    const a = median(tls.runs.filter((x) => x.system === 'Postern').map((x) => x.e2eRate));
    const b = median(tls.runs.filter((x) => x.system === 'Postfix').map((x) => x.e2eRate));
    if (Number.isFinite(b)) out.push(`${a / b >= 1.5 ? 'MET    ' : 'NOT MET'} end-to-end with verified TLS ≥ 1.5× Postfix: ${fmt(a)} vs ${fmt(b)} msg/s = ${(a / b).toFixed(2)}×`);
    const p99 = median(tls.probes.filter((x) => x.system === 'Postern').map((x) => x.latency.p99));
    out.push(`${p99 <= 50 ? 'MET    ' : 'NOT MET'} accept p99 ≤ 50 ms at half of Postern's peak (${fmt(tls.probeRate)} msg/s, tls): ${fmt(p99, 1)} ms`);
  }
  if (queue) {
    out.push(
      `${queue.peakRssMb <= 300 && !queue.reachedCap ? 'MET    ' : 'NOT MET'} ${fmt(queue.target)} queued with RSS ≤ 300 MB: ${fmt(queue.queued)} queued${queue.reachedCap ? ` (time cap reached, target ${fmt(queue.target)})` : ''}, peak RSS ${fmt(queue.peakRssMb)} MB`,
    );
    out.push(
      `${queue.firstDeliverySeconds <= 10 ? 'MET    ' : 'NOT MET'} delivery resumes within 10 s of a restart: first delivery ${fmt(queue.firstDeliverySeconds, 2)} s after start ` +
        (Number.isFinite(queue.delivernowSeconds)
          ? `(recipients were deferred, earliest retry due ${fmt(queue.firstDueSeconds, 2)} s after start; \`queue delivernow\` returned at ${fmt(queue.delivernowSeconds, 2)} s)`
          : `(recipients due at once: never tried)`),
    );
  }
  if (lookup && lookup.length >= 2) {
    const first = lookup[0]!;
    const last = lookup[lookup.length - 1]!;
    const ratio = last.matchNs / first.matchNs;
    const hotRatio = last.matchHotNs / first.matchHotNs;
    out.push(
      `${hotRatio <= 1.5 ? 'MET    ' : 'NOT MET'} constant lookup cost: ${lookup.map((l) => `${fmt(l.entries)}: ${fmt(l.matchHotNs)} ns`).join(', ')} with the same 30 domains (×${hotRatio.toFixed(2)}); ` +
        `random domains over the whole table: ${lookup.map((l) => `${fmt(l.matchNs)} ns`).join(', ')} (×${ratio.toFixed(2)}, cache misses grow with the table)`,
    );
  }
  return out;
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  installSignalHandlers();
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  checkEnvironment(o);
  log(`machine: ${machine()}`);
  log(`postern: ${gitDescribe()}`);
  log(`options: ${JSON.stringify({ ...o, scenarios: o.scenarios.join(',') })}`);
  const needsWorld = o.scenarios.some((s) => s !== 'lookup');
  const world = needsWorld ? await makeWorld(o) : undefined;

  const reports: ScenarioReport[] = [];
  let lookup: LookupRow[] | undefined;
  let queue: QueueReport | undefined;
  let cluster: ClusterReport | undefined;
  let internet: InternetReport | undefined;
  for (const s of o.scenarios) {
    if (s === 'lookup') {
      log('scenario lookup: DestinationTable.match / resolve at 1k, 10k, 100k entries');
      lookup = lookupBench([1000, 10_000, 100_000], o.quick ? 100_000 : 1_000_000);
      for (const l of lookup) log(`  ${fmt(l.entries)} entries: match ${fmt(l.matchNs, 1)} ns, resolve ${fmt(l.resolveNs, 1)} ns per lookup, of which normaliseDomain ${fmt(l.normaliseNs, 1)} ns (hits ${(l.hitShare * 100).toFixed(0)}%)`);
    } else if (s === 'queue-1m') {
      queue = await queueScenario(o, world!);
    } else if (s === 'internet') {
      internet = await internetScenario({
        dir: world!.dir,
        runs: o.runs,
        messages: o.internetMessages,
        domains: o.internetDomains,
        hosts: o.internetHosts,
        postfix: o.postfix,
        maxMinutes: o.internetMaxMinutes,
        sessions: o.sessions,
        runInjector: (cfg) => runInjector(cfg),
        ...(o.profile ? { profileDir: o.profile } : {}),
      });
    } else if (s === 'cluster') {
      cluster = await clusterScenario({
        dir: world!.dir,
        template: world!.posternTemplates.plain,
        messages: o.messages,
        sessions: o.sessions,
        size: o.size,
        runs: o.runs,
        startSink: () => startSink({ addresses: [ADDR.sink], port: PORT.sink, hostname: SINK_NAME, workers: o.sinkWorkers }),
        runInjector: (cfg) => runInjector(cfg),
        waitDelivered: (sink, n) => waitDelivered(sink as Sink, n),
      });
    } else {
      reports.push(await deliveryScenario(s, o, world!));
    }
  }

  const out: string[] = [];
  out.push('');
  out.push(`# Postern bench — ${new Date().toISOString()}`);
  out.push(`machine: ${machine()}`);
  out.push(`command: npm run bench -- ${process.argv.slice(2).join(' ')}`);
  out.push(`postern: ${gitDescribe()}`);
  out.push(`work: ${fmt(o.messages)} messages of ${fmt(o.size)} bytes, 1 recipient each, ${o.sessions} sessions with connection reuse; ${o.runs} run(s) per system; medians`);
  if (reports.length) {
    out.push('');
    out.push(scenarioTable(reports));
    out.push('');
    out.push('Peak RSS: Postern = VmHWM of its process; Postfix (Σ) = peak of the sum of VmRSS over all its processes, sampled every 250 ms (shared pages counted once per process).');
    out.push('Peak PSS: proportional set size (shared pages divided among their users), sampled (Postern every 500 ms, Postfix every 250 ms, summed over its processes).');
    out.push('CPU: user+system seconds of the relay (Postfix: all its processes, including exited ones reaped by the master), per 1,000 messages.');
    for (const r of reports) {
      out.push(`sink ceiling (${r.name}): ${r.ceilings.map((c) => `${fmt(c.rate)} msg/s — ${c.what}`).join('; ')}`);
      for (const v of r.verification) out.push(`verification (${r.name}): ${v}`);
      const ev = r.runs.map((x) => `${x.system} ${x.tls.verified}/${x.tls.unverified}/${x.tls.failed}`).join(', ');
      if (r.name !== 'plain') out.push(`TLS sessions logged by the relays as verified/unverified/failed, per run (${r.name}): ${ev}`);
      out.push(`connections seen by the sink per run (${r.name}): ${r.runs.map((x) => `${x.system} ${x.sink.sessions}`).join(', ')}`);
      out.push(`machine load average (1 min) at the end of each run (${r.name}): ${r.runs.map((x) => `${x.system} ${x.load.toFixed(1)}`).join(', ')}`);
      out.push(`wait for a quiet machine before each run (${r.name}; CPUs busy in the last second): ${r.runs.map((x) => `${x.system} ${x.quietWaitSeconds.toFixed(0)} s (${Math.round(x.busyBefore * 100)} %)`).join(', ')}`);
    }
  }
  if (lookup) {
    out.push('');
    out.push('| entries | match ns/lookup | resolve ns/lookup | normaliseDomain alone ns | match minus normalise ns | match, 30 hot domains ns |');
    out.push('| ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const l of lookup) out.push(`| ${fmt(l.entries)} | ${fmt(l.matchNs, 1)} | ${fmt(l.resolveNs, 1)} | ${fmt(l.normaliseNs, 1)} | ${fmt(l.matchNs - l.normaliseNs, 1)} | ${fmt(l.matchHotNs, 1)} |`);
  }
  if (queue) {
    out.push('');
    out.push(`queue-1m (destination ${queue.down}, ${queue.size}-byte messages): ${fmt(queue.queued)} queued in ${fmt(queue.injectSeconds)} s (${fmt(queue.injectRate)} msg/s); peak RSS ${fmt(queue.peakRssMb)} MB`);
    out.push('| queued | elapsed s | RSS MB | peak RSS MB |');
    out.push('| ---: | ---: | ---: | ---: |');
    for (const m of queue.milestones) out.push(`| ${fmt(m.queued)} | ${fmt(m.seconds)} | ${fmt(m.rssMb)} | ${fmt(m.hwmMb)} |`);
    out.push(`queue at restart: ${fmt(queue.waiting)} recipients waiting, ${fmt(queue.alreadyTried)} of them already tried and deferred; earliest due ${fmt(queue.firstDueSeconds, 2)} s after the restart`);
    out.push(
      `stop took ${fmt(queue.stopSeconds, 1)} s; restart: listening after ${fmt(queue.restartListeningSeconds, 2)} s, first delivery ${fmt(queue.firstDeliverySeconds, 2)} s after start, ` +
        `${fmt(queue.deliveredIn10s)} delivered within 10 s, ${fmt(queue.deliveredIn30s)} within the observation window; peak RSS after restart ${fmt(queue.rssAfterRestartMb)} MB`,
    );
  }
  if (cluster) {
    out.push('');
    out.push(`cluster (plain, one destination under concurrency ${o.concurrency} and a recipient window, enforced system wide; Redis on loopback, round trip from the bench p50 ${fmt(cluster.rttP50Ms, 3)} ms, p99 ${fmt(cluster.rttP99Ms, 3)} ms):`);
    out.push(clusterTable(cluster));
  }
  if (internet) {
    out.push('');
    out.push(`internet: ${internet.summary.join('; ')}`);
    out.push(...internetTable(internet));
  }
  const t = targets(reports, queue, lookup);
  if (t.length) {
    out.push('');
    out.push('Targets:');
    for (const x of t) out.push(`  ${x}`);
  }
  for (const r of reports) if (r.profile) out.push('', `CPU profile, scenario ${r.name} (Postern):`, r.profile);
  if (queue?.profile) out.push('', 'CPU profile, scenario queue-1m (Postern, injection phase):', queue.profile);
  out.push('', `bench took ${fmt((Date.now() - started) / 1000)} s`);
  process.stdout.write(out.join('\n') + '\n');
  if (o.json) writeFileSync(o.json, JSON.stringify({ machine: machine(), options: o, reports, lookup, queue, cluster, internet }, null, 2));
}

main()
  .catch((e: Error) => {
    process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup.runAll().then(() => process.exit(process.exitCode ?? 0)));
