/**
 * The `internet` scenario (issue T2 9/9): Postern and Postfix on the same work — 10,000
 * recipient domains on 1,000 MX hosts (distinct loopback addresses, one sink process playing
 * them all) with the delays and faults of real destinations, a 200-entry destination table, a
 * Zipf mix of 100,000 messages of 2–100 KB with 1–5 recipients.
 *
 * Per run and system: the time until every deliverable recipient is delivered (the world says
 * which are, internet-world.ts), checked at the sink address by address; the rest checked in
 * the relay's own queue (deferred, with the reason the world gives); peak RSS; accept latency
 * while delivering; CPU per 1,000 messages; the most sockets open; and the limits measured at
 * the receivers (concurrency, messages per connection, recipient windows) against the table.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { summariseProfile } from './profile.js';
import os from 'node:os';
import path from 'node:path';
import { TestCA } from '../test/peers/ca.js';
import { startDnsServer, type Zone } from '../test/peers/dns-server.js';
import { runCliOk } from '../test/process.js';
import type { InjectConfig, InjectResult } from './inject.js';
import { expectedFate, makeWorld, summary, tableImportFile, zoneOf } from './internet-world.js';
import { startInternetSink, type InternetSinkStats } from './internet-sink.js';
import { postfixInternetConfig } from './internet-postfix.js';
import type { Expected, TableEntry, World } from './internet-types.js';
import { startPosternRelay, startPostfixWith, type Relay } from './relays.js';
import { cleanup, cpuSeconds, fmt, groupMembers, log, median, sleep } from './util.js';
import { sinkCeiling, type CeilingResult } from './internet-ceiling.js';

/** This scenario's own addresses and ports (the MX hosts are 127.0.100.1 and up). */
const INET = { dns: '127.0.40.54', dnsPort: 2754, smtpPort: 2727, posternListen: '127.0.40.1', posternPort: 2703 };

export interface InternetOptions {
  dir: string;
  runs: number;
  messages: number;
  domains: number;
  hosts: number;
  postfix: boolean;
  /** Give up waiting for the deliverable mail after this long. */
  maxMinutes: number;
  sessions: number;
  runInjector: (cfg: InjectConfig) => Promise<InjectResult>;
  /** One extra Postern run under node --cpu-prof, its profile kept here. */
  profileDir?: string;
}

export interface InternetRun {
  system: 'Postern' | 'Postfix';
  injected: number;
  injectSeconds: number;
  /** From the first injection to the last deliverable recipient delivered; NaN when not all were within the time allowed. */
  finishSeconds: number;
  /** How long the run waited for the deliverable mail (s). */
  waitedSeconds: number;
  deliverable: number;
  delivered: number;
  /** Delivered but not deliverable, or deliverable and missing: named (at most 10). */
  wrong: string[];
  /** Recipients left in the queue, by reason class, and any whose reason is not what the world says. */
  deferred: number;
  wrongReasons: string[];
  acceptP50Ms: number;
  acceptP99Ms: number;
  peakRssMb: number;
  cpuPer1k: number;
  maxSockets: number;
  /** Limits the receivers saw exceeded (domain: what). */
  exceeded: string[];
  /** Seconds from the first injection until 50 %, 90 %, 99 % of the deliverable recipients arrived. */
  p50Seconds: number;
  p90Seconds: number;
  p99Seconds: number;
  /** Missing deliverable recipients by their domain's TLS setting and first MX host's fault. */
  missingBy: Record<string, number>;
  /** The machine's 1-minute load average at the start and at the end of the run. */
  loadStart: number;
  load: number;
  /** The sink's CPU seconds during the run, and the most messages per second it took in any 10 s. */
  sinkCpuSeconds: number;
  peakRate: number;
}

export interface InternetReport {
  summary: string[];
  runs: InternetRun[];
  /** The sink driven straight (no relay), before the runs and after them. */
  ceilings: (CeilingResult & { when: string })[];
  /** The CPU profile of an extra Postern run, summarised (with --profile). */
  profile?: string;
}

const entryOf = (world: World): ((domain: string) => TableEntry) => {
  const m = new Map(world.table.map((e) => [e.domain, e]));
  return (d) => m.get(d) ?? world.defaults;
};

/** Sockets open by these processes (fd links `socket:[…]`). */
function socketCount(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {
        // closed meanwhile
      }
    }
  }
  return n;
}

/** The reason class of a deferral, from a reply text (Postern's or Postfix's words). */
export function reasonClass(text: string): string {
  if (/\b451\b|4\.3\.0|try again later/i.test(text)) return 'rcpt-4xx';
  if (/refused|ECONNREFUSED/i.test(text)) return 'refused';
  if (/greet|timed out|timeout|conversation with .* timed out/i.test(text)) return 'no-greeting';
  if (/STARTTLS|TLS/i.test(text)) return 'tls';
  return 'other';
}

/** The classes a deferred recipient may show: any of the reasons the world gives for its hosts. */
function expectedClasses(e: Extract<Expected, { kind: 'deferred' }>): Set<string> {
  const out = new Set<string>();
  if (/451/.test(e.why)) out.add('rcpt-4xx');
  if (/refus/i.test(e.why)) out.add('refused');
  if (/greet/i.test(e.why)) out.add('no-greeting');
  if (/TLS|STARTTLS|handshake/i.test(e.why)) out.add('tls');
  return out;
}

export async function internetScenario(o: InternetOptions): Promise<InternetReport> {
  const world = makeWorld({ seed: 20261202, messages: o.messages, domains: o.domains, hosts: o.hosts });
  const lines = summary(world);
  for (const l of lines) log(`scenario internet: ${l}`);
  const fates = new Map<string, Expected>();
  for (const m of world.messages) for (const to of m.to) if (!fates.has(to)) fates.set(to, expectedFate(world, to));
  const deliverable = [...fates].filter(([, f]) => f.kind === 'delivered').map(([a]) => a);
  const deliverableSet = new Set(deliverable);
  const entry = entryOf(world);

  const ca = await TestCA.create('Postern internet bench CA');
  const cert = await ca.issue({ cn: world.hosts[0]!.name, dnsNames: world.hosts.map((h) => h.name) });
  const caFile = path.join(o.dir, 'internet-ca.pem');
  writeFileSync(caFile, ca.certPem);
  const dns = await startDnsServer({ zone: zoneOf(world, { ttl: 3600 }) as Zone, host: INET.dns, port: INET.dnsPort });
  cleanup.add('internet dns', () => dns.close());
  const windows: Record<string, { windowMinutes?: number }> = {};
  for (const e of world.table) if (e.window) windows[e.domain] = { windowMinutes: e.window.minutes };
  // Each host its own certificate, its name as CN and SAN, as real MX hosts have (the
  // appliance's Verify algorithm accepts the MX host name in the CN, not in the SAN alone).
  const certs: Record<string, { key: string; cert: string }> = {};
  for (const h of world.hosts) {
    const c = await ca.issue({ cn: h.name, dnsNames: [h.name] });
    certs[h.name] = { key: c.keyPem, cert: c.chainPem };
  }
  const sink = await startInternetSink({ hosts: world.hosts, port: INET.smtpPort, tls: { key: cert.keyPem, cert: cert.chainPem }, certs, limits: windows });
  cleanup.add('internet sink', () => sink.stop());

  // Postern, configured with the CLI as an administrator would: the CA, the table by import.
  const template = path.join(o.dir, 'internet-postern-template');
  const importFile = path.join(o.dir, 'internet-table.ini');
  writeFileSync(importFile, tableImportFile(world));
  await runCliOk(['certconfig', 'authority', 'add', caFile, '--data-dir', template]);
  await runCliOk(['certconfig', 'authority', 'system', 'off', '--data-dir', template]);
  await runCliOk(['destconfig', 'import', importFile, '--data-dir', template]);
  const policyFile = path.join(o.dir, 'internet-pf-verify-policy');
  const pf = postfixInternetConfig(world, { port: INET.smtpPort, caFile, policyFile });
  const transportFile = path.join(o.dir, 'internet-pf-transport');
  writeFileSync(transportFile, pf.transport);
  writeFileSync(policyFile, pf.verifyPolicy);

  const mix = world.messages.map((m) => ({ to: m.to, size: m.size }));
  const runs: InternetRun[] = [];
  // The sink's own ceiling: straight at its fault-free hosts over verified TLS, with as many
  // connections as the relays keep open at most, the world's message sizes.
  const ceilings: InternetReport['ceilings'] = [];
  const measureCeiling = async (when: string): Promise<void> => {
    const c = await sinkCeiling({ hosts: world.hosts, port: INET.smtpPort, caPem: ca.certPem, connections: 500, seconds: 15, sizes: world.messages.slice(0, 200).map((m) => m.size) });
    ceilings.push({ ...c, when });
    log(`scenario internet: sink ceiling (${when}): ${fmt(c.messagesPerSecond)} msg/s over ${c.connections} TLS connections for ${c.seconds} s${c.errors.length ? `; errors: ${c.errors.slice(0, 3).join('; ')}` : ''}`);
    // Its sessions must be gone before the measures are zeroed for a run.
    for (let i = 0; i < 100 && (await sink.stats({ addresses: false })).global.openSessions > 0; i++) await sleep(100);
  };
  await measureCeiling('before the runs');
  let seq = 0;
  const runOnce = async (system: 'Postern' | 'Postfix', label: string, nodeArgs?: string[]): Promise<InternetRun> => {
    await sink.reset();
    log(`scenario internet: ${label} ${system}: ${fmt(world.messages.length)} messages ...`);
    const relay: Relay =
      system === 'Postern'
        ? await startPosternRelay({ template }, {
            dataDir: path.join(o.dir, `internet-run-${++seq}`),
            listen: { host: INET.posternListen, port: INET.posternPort },
            dnsServer: `${INET.dns}:${INET.dnsPort}`,
            smtpPort: INET.smtpPort,
            config: { timeouts: { greeting: 30 } },
            ...(nodeArgs ? { nodeArgs } : {}),
          })
        : await startPostfixWith({ ...pf.mainCf, transport_maps: `texthash:${transportFile}` }, pf.masterCf);
    const pids = () => (system === 'Postern' ? [relay.pid()] : groupMembers(relay.pid()));
    const loadStart = os.loadavg()[0]!;
    const sinkCpu0 = cpuSeconds(sink.pid);
    let maxSockets = 0;
    const sampler = setInterval(() => (maxSockets = Math.max(maxSockets, socketCount(pids()))), 500);
    // Recipients arrived at the sink, every second from the first injection on (the relays
    // deliver while mail still comes in).
    const progress: { at: number; n: number }[] = [];
    let polling = false;
    const poll = setInterval(() => {
      if (polling) return;
      polling = true;
      sink.global().then(
        (g) => progress.push({ at: Date.now(), n: g.recipients }),
        () => undefined,
      ).finally(() => (polling = false));
    }, 1000);
    try {
      const inj = await o.runInjector({ host: relay.host, port: relay.port, sessions: o.sessions, messages: mix.length, size: 0, domains: [], rate: 0, messagesPerConnection: 0, mix });
      if (inj.sent < mix.length) throw new Error(`${system}: only ${inj.sent} of ${mix.length} messages accepted: ${inj.errors.join('; ')}`);
      // Until every deliverable recipient has arrived (or the time is up).
      const until = Date.now() + o.maxMinutes * 60_000;
      let complete: InternetSinkStats | undefined;
      let last = 0;
      let lastChange = Date.now();
      for (;;) {
        // Counts only while short of the number; every address once it may be complete.
        let got = (await sink.global()).recipients;
        if (got >= deliverable.length) {
          const full = await sink.stats();
          got = deliverable.reduce((n, a) => n + ((full.delivered[a] ?? 0) > 0 ? 1 : 0), 0);
          if (got === deliverable.length) {
            complete = full;
            break;
          }
        }
        if (got !== last) (last = got), (lastChange = Date.now());
        if (Date.now() > until) {
          log(`scenario internet: ${system}: ${got} of ${deliverable.length} deliverable recipients after ${o.maxMinutes} min (last progress ${Math.round((Date.now() - lastChange) / 1000)} s ago)`);
          break;
        }
        await sleep(1000);
      }
      clearInterval(poll);
      const s = complete ?? (await sink.stats());
      const missing = deliverable.filter((a) => !s.delivered[a]).length;
      const finishSeconds = missing === 0 ? (s.global.lastAt - inj.startAt) / 1000 : NaN;
      const waitedSeconds = (Date.now() - inj.startAt) / 1000;
      const wrong: string[] = [];
      for (const a of deliverable) if (!(s.delivered[a] ?? 0)) wrong.push(`missing ${a} (${JSON.stringify(fates.get(a))})`);
      for (const a of Object.keys(s.delivered)) if (!deliverableSet.has(a)) wrong.push(`delivered though not deliverable: ${a} (${JSON.stringify(fates.get(a))})`);
      const exceeded: string[] = [];
      for (const [d, m] of Object.entries(s.domains)) {
        const e = entry(d);
        if (m.maxConcurrent > e.concurrency) exceeded.push(`${d}: ${m.maxConcurrent} connections at once (limit ${e.concurrency})`);
        if (m.maxMessagesPerSession > e.messagesPerConnection) exceeded.push(`${d}: ${m.maxMessagesPerSession} messages on one connection (limit ${e.messagesPerConnection})`);
        if (system === 'Postern' && e.window && m.maxInWindow > e.window.recipients) exceeded.push(`${d}: ${m.maxInWindow} recipients in ${e.window.minutes} min (limit ${e.window.recipients})`);
      }
      const { deferred, wrongReasons } = await checkQueue(system, relay, fates);
      // Recipients per second at the sink over any 10 s (the polls are a second apart).
      let peakRate = 0;
      for (let i = 0, j = 0; i < progress.length; i++) {
        while (progress[i]!.at - progress[j]!.at > 10_000) j++;
        const span = (progress[i]!.at - progress[j]!.at) / 1000;
        if (span >= 5) peakRate = Math.max(peakRate, (progress[i]!.n - progress[j]!.n) / span);
      }
      const reach = (share: number) => {
        const p = progress.find((x) => x.n >= share * deliverable.length);
        return p ? (p.at - inj.startAt) / 1000 : NaN;
      };
      const missingBy: Record<string, number> = {};
      for (const a of deliverable) {
        if (s.delivered[a]) continue;
        const d = world.domains.find((x) => x.name === a.slice(a.indexOf('@') + 1))!;
        const k = `${entry(d.name).tls}${entry(d.name).window ? '+window' : ''} / ${d.mx.map((h) => world.hosts[h]!.fault).join(',')}`;
        missingBy[k] = (missingBy[k] ?? 0) + 1;
      }
      const mem = relay.memory();
      const run: InternetRun = {
        system,
        injected: inj.sent,
        injectSeconds: (inj.endAt - inj.startAt) / 1000,
        finishSeconds,
        waitedSeconds,
        deliverable: deliverable.length,
        delivered: deliverable.length - wrong.filter((w) => w.startsWith('missing')).length,
        wrong: wrong.slice(0, 10),
        deferred,
        wrongReasons: wrongReasons.slice(0, 10),
        acceptP50Ms: inj.latencyMs.p50,
        acceptP99Ms: inj.latencyMs.p99,
        peakRssMb: mem.rssKb / 1024,
        cpuPer1k: (relay.cpuSeconds() * 1000) / inj.sent,
        maxSockets,
        exceeded: exceeded.slice(0, 10),
        loadStart,
        load: os.loadavg()[0]!,
        sinkCpuSeconds: cpuSeconds(sink.pid) - sinkCpu0,
        peakRate,
        p50Seconds: reach(0.5),
        p90Seconds: reach(0.9),
        p99Seconds: reach(0.99),
        missingBy,
      };
      log(`scenario internet: ${system}: 50/90/99 % of the deliverable recipients after ${fmt(run.p50Seconds, 1)} / ${fmt(run.p90Seconds, 1)} / ${fmt(run.p99Seconds, 1)} s; missing by setting / faults: ${JSON.stringify(missingBy)}`);
      log(`scenario internet: ${system}: deliverable mail ${Number.isNaN(run.finishSeconds) ? `NOT all delivered after ${fmt(run.waitedSeconds)} s` : `done in ${fmt(run.finishSeconds, 1)} s`} (${fmt(run.delivered)}/${fmt(run.deliverable)}), ${fmt(run.deferred)} left deferred, accept p99 ${fmt(run.acceptP99Ms, 1)} ms, peak RSS ${fmt(run.peakRssMb)} MB, ${fmt(run.maxSockets)} sockets at most, ${run.exceeded.length} limits exceeded, ${run.wrong.length + run.wrongReasons.length} wrong outcomes`);
      return run;
    } finally {
      clearInterval(sampler);
      clearInterval(poll);
      await relay.stop();
    }
  };
  for (let r = 0; r < o.runs; r++) {
    for (const system of o.postfix ? (['Postern', 'Postfix'] as const) : (['Postern'] as const)) runs.push(await runOnce(system, `run ${r + 1}/${o.runs}`));
  }
  await measureCeiling('after the runs');
  let profile: string | undefined;
  if (o.profileDir) {
    const dir = path.join(o.profileDir, 'internet');
    mkdirSync(dir, { recursive: true });
    await runOnce('Postern', 'profiling run (under --cpu-prof, not part of the table)', ['--cpu-prof', '--cpu-prof-dir', dir]);
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
    if (files.length) profile = summariseProfile(path.join(dir, files[files.length - 1]!));
  }
  return { summary: lines, runs, ceilings, ...(profile ? { profile } : {}) };
}

/** The recipients still queued: each deferred for a reason the world gives for it. */
async function checkQueue(system: 'Postern' | 'Postfix', relay: Relay, fates: Map<string, Expected>): Promise<{ deferred: number; wrongReasons: string[] }> {
  const rows: { to: string; reason: string }[] = [];
  if (system === 'Postern') {
    const dataDir = (relay as Relay & { dataDir?: string }).dataDir;
    if (!dataDir) return { deferred: 0, wrongReasons: ['the data directory of the run is unknown'] };
    const list = JSON.parse(await runCliOk(['queue', 'list', '--json', '--data-dir', dataDir])) as { to: string; lastReply: string | null }[];
    for (const x of list) rows.push({ to: x.to, reason: x.lastReply ?? '(not tried yet)' });
  } else {
    const etc = path.join((relay as Relay & { instance: { dir: string } }).instance.dir, 'etc');
    const out = spawnSync('/usr/sbin/postqueue', ['-c', etc, '-j'], { encoding: 'utf8', maxBuffer: 1 << 30 });
    for (const line of out.stdout.split('\n')) {
      if (!line.trim()) continue;
      const q = JSON.parse(line) as { recipients: { address: string; delay_reason?: string }[] };
      for (const r of q.recipients) rows.push({ to: r.address, reason: r.delay_reason ?? '(not tried yet)' });
    }
  }
  const wrongReasons: string[] = [];
  for (const r of rows) {
    const f = fates.get(r.to);
    if (!f) wrongReasons.push(`${r.to}: not a recipient of the run`);
    else if (f.kind === 'delivered') continue; // delivered too (duplicates are checked at the sink)
    else if (!expectedClasses(f).has(reasonClass(r.reason))) wrongReasons.push(`${r.to}: "${r.reason}" (expected: ${f.why})`);
  }
  return { deferred: rows.length, wrongReasons };
}

export function internetTable(r: InternetReport): string[] {
  const out = [
    '| system | deliverable done s | 50 / 90 / 99 % s | delivered | left deferred | wrong outcomes | accept p50 / p99 ms | peak RSS MB | CPU s per 1k msg | most sockets | limits exceeded | peak rcpt/s at the sink | sink CPU s | load start → end |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const system of ['Postern', 'Postfix'] as const) {
    const rs = r.runs.filter((x) => x.system === system);
    if (!rs.length) continue;
    const m = (f: (x: InternetRun) => number) => median(rs.map(f));
    const unfinished = rs.filter((x) => Number.isNaN(x.finishSeconds));
    const done = unfinished.length ? `not finished in ${unfinished.length}/${rs.length} runs (waited ${fmt(Math.min(...unfinished.map((x) => x.waitedSeconds)))} s)` : fmt(m((x) => x.finishSeconds), 1);
    out.push(
      `| ${system} | ${done} | ${fmt(m((x) => x.p50Seconds))} / ${fmt(m((x) => x.p90Seconds))} / ${fmt(m((x) => x.p99Seconds))} | ${fmt(m((x) => x.delivered))}/${fmt(rs[0]!.deliverable)} | ${fmt(m((x) => x.deferred))} | ${fmt(m((x) => x.wrong.length + x.wrongReasons.length))} | ${fmt(m((x) => x.acceptP50Ms), 1)} / ${fmt(m((x) => x.acceptP99Ms), 1)} | ${fmt(m((x) => x.peakRssMb))} | ${fmt(m((x) => x.cpuPer1k), 2)} | ${fmt(m((x) => x.maxSockets))} | ${fmt(m((x) => x.exceeded.length))} | ${fmt(m((x) => x.peakRate))} | ${fmt(m((x) => x.sinkCpuSeconds))} | ${fmt(m((x) => x.loadStart), 1)} → ${fmt(m((x) => x.load), 1)} |`,
    );
  }
  // A system that did not finish counts as finishing when the wait ended (a lower bound on the ratio).
  const time = (x: InternetRun) => (Number.isNaN(x.finishSeconds) ? x.waitedSeconds : x.finishSeconds);
  const pr = r.runs.filter((x) => x.system === 'Postern');
  const fr = r.runs.filter((x) => x.system === 'Postfix');
  if (pr.length && fr.length) {
    const ratio = median(fr.map(time)) / median(pr.map(time));
    const bound = fr.some((x) => Number.isNaN(x.finishSeconds)) ? 'at least ' : '';
    const pUnfinished = pr.some((x) => Number.isNaN(x.finishSeconds));
    out.push('', pUnfinished ? 'Postern did not deliver all the deliverable mail in the time allowed: no ratio.' : `Postern finished the deliverable mail ${bound}${fmt(ratio, 2)}× faster than Postfix (medians${bound ? '; Postfix had not finished when the wait ended' : ''}).`);
  }
  if (r.runs.length) out.push(`Runs: ${r.runs.map((x) => `${x.system} ${Number.isNaN(x.finishSeconds) ? `not done (${fmt(x.waitedSeconds)} s)` : `${fmt(x.finishSeconds, 1)} s`}`).join(', ')}.`);
  for (const c of r.ceilings) out.push(`Sink ceiling (${c.when}): ${fmt(c.messagesPerSecond)} msg/s, ${fmt(c.recipientsPerSecond)} rcpt/s straight over ${c.connections} verified TLS connections for ${c.seconds} s${c.errors.length ? ` (errors: ${c.errors.slice(0, 3).join('; ')})` : ''}.`);
  for (const x of r.runs) if (Object.keys(x.missingBy).length) out.push(`  ${x.system} missing, by TLS setting / MX faults: ${JSON.stringify(x.missingBy)}`);
  for (const x of r.runs) {
    for (const w of [...x.wrong, ...x.wrongReasons, ...x.exceeded]) out.push(`  ${x.system}: ${w}`);
  }
  if (r.profile) out.push('', 'CPU profile, scenario internet (Postern):', r.profile);
  return out;
}
