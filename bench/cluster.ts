/**
 * Scenario `cluster` (SPEC §12): what Redis costs per delivered message, and 1 node against 3.
 *
 * One plain sink, one destination entry (the (Default), concurrency C, a recipient window far
 * above what is sent so that every batch takes from the shared window) enforced system wide.
 * Three configurations, each run `--runs` times on fresh data directories and an emptied Redis:
 *   - 1 node, no cluster (the embedded default: the baseline);
 *   - 1 node in a cluster (every connection slot a lease, every batch a take from the window);
 *   - 3 nodes in a cluster on 127.0.40.21-23, each injected a third of the messages at once;
 *   - the same 3 nodes as separate gateways (no Redis, each its own limits): what three processes
 *     sharing this machine cost by themselves, so the cluster's own cost can be told apart.
 * Reported: end-to-end rate, accept latency, CPU of the nodes and of Redis per 1,000 messages,
 * Redis round trips and scripts per delivered message (INFO), and the Redis round trip time
 * measured from the bench itself (PING, sequential), from which the added latency follows.
 */
import { Redis } from 'ioredis';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { runCliOk } from '../test/process.js';
import { startRedis } from '../test/peers/redis.js';
import type { InjectConfig, InjectResult } from './inject.js';
import { PORT, startPosternRelay, type PosternSetup, type Relay } from './relays.js';
import type { SinkStats } from './sink.js';
import { cleanup, fmt, log, median } from './util.js';

export const CLUSTER_REDIS = { host: '127.0.40.60', port: 2760 };
const NODE_ADDR = (k: number) => `127.0.40.${21 + k}`;

export interface ClusterRun {
  label: string;
  nodes: number;
  cluster: boolean;
  messages: number;
  e2eRate: number;
  acceptP50: number;
  acceptP99: number;
  /** CPU seconds of every node, per 1,000 messages. */
  cpuPer1k: number;
  /** CPU seconds of redis-server, per 1,000 messages. */
  redisCpuPer1k: number;
  /** Commands the nodes sent Redis (round trips), per delivered message. */
  redisTripsPerMessage: number;
  /** Lua scripts (leases, window takes) per delivered message. */
  redisScriptsPerMessage: number;
  peakRssMb: number;
}

export interface ClusterReport {
  /** Redis round trip from the bench process, median and p99 of sequential PINGs, ms. */
  rttP50Ms: number;
  rttP99Ms: number;
  runs: ClusterRun[];
}

export interface ClusterBenchDeps {
  dir: string;
  template: PosternSetup;
  messages: number;
  sessions: number;
  size: number;
  runs: number;
  startSink: () => Promise<{ reset(): Promise<void>; stats(): Promise<SinkStats>; stop(): Promise<void> }>;
  runInjector: (cfg: InjectConfig) => Promise<InjectResult>;
  waitDelivered: (sink: { stats(): Promise<SinkStats> }, n: number) => Promise<SinkStats>;
}

/**
 * Commands the nodes send Redis themselves are round trips; Redis's statistics also count the
 * commands a script runs inside it, so round trips are counted from the commands Postern sends
 * directly: scripts (leases, window takes, configuration writes), lease releases (ZREM) and the
 * heartbeat's and configuration's reads. (A heartbeat's HSET is left out: scripts use HSET too;
 * it is one a second per node.)
 */
const DIRECT = ['eval', 'evalsha', 'zrem', 'hgetall', 'hmget', 'hexists', 'get', 'set', 'subscribe'];

async function redisInfo(r: Redis): Promise<{ trips: number; scripts: number; cpu: number }> {
  const all = await r.info('everything');
  const f = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(all)?.[1] ?? 0);
  const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(all)?.[1] ?? 0);
  return { trips: DIRECT.reduce((n, c) => n + calls(c), 0), scripts: calls('eval') + calls('evalsha'), cpu: f('used_cpu_sys') + f('used_cpu_user') };
}

async function roundTrip(r: Redis): Promise<{ p50: number; p99: number }> {
  const ms: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = process.hrtime.bigint();
    await r.ping();
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length / 2)]!, p99: ms[Math.floor(ms.length * 0.99)]! };
}

export async function clusterScenario(d: ClusterBenchDeps): Promise<ClusterReport> {
  const redis = await startRedis(CLUSTER_REDIS);
  cleanup.add('redis-server', () => redis.close());
  const r = new Redis({ host: CLUSTER_REDIS.host, port: CLUSTER_REDIS.port, lazyConnect: true });
  await r.connect();
  // The plain template, plus a recipient window far above what is sent: every batch takes from it.
  const template = path.join(d.dir, 'postern-template-cluster');
  await cp(d.template.template, template, { recursive: true });
  await runCliOk(['destconfig', 'default', '--recipients', '1000000000/1', '--data-dir', template]);
  const sink = await d.startSink();
  const report: ClusterReport = { rttP50Ms: 0, rttP99Ms: 0, runs: [] };
  try {
    const rtt = await roundTrip(r);
    report.rttP50Ms = rtt.p50;
    report.rttP99Ms = rtt.p99;
    log(`scenario cluster: Redis round trip from the bench p50 ${fmt(rtt.p50, 3)} ms, p99 ${fmt(rtt.p99, 3)} ms`);
    const shapes = [
      { label: '1 node, no cluster', nodes: 1, cluster: false },
      { label: '1 node, cluster', nodes: 1, cluster: true },
      { label: '3 nodes, cluster', nodes: 3, cluster: true },
      // Three separate gateways (each its own limits): what three processes on this machine cost without Redis.
      { label: '3 nodes, separate', nodes: 3, cluster: false },
    ];
    let seq = 0;
    for (let run = 0; run < d.runs; run++) {
      for (const shape of shapes) {
        await sink.reset();
        await r.flushall();
        await r.config('RESETSTAT');
        log(`scenario cluster: run ${run + 1}/${d.runs}, ${shape.label}: ${d.messages} messages ...`);
        const relays: Relay[] = [];
        try {
          for (let k = 0; k < shape.nodes; k++) {
            const dataDir = path.join(d.dir, `cluster-${++seq}-n${k}`);
            relays.push(
              await startPosternRelay({ template }, {
                dataDir,
                listen: { host: NODE_ADDR(k), port: PORT.posternListen },
                args: ['--admin', 'off', ...(shape.cluster ? ['--cluster', redis.url, '--node-name', `n${k}`] : [])],
              }),
            );
            // The first node seeds the cluster; the others join it.
            if (shape.cluster && k === 0) await waitFor(async () => (await r.hget('postern:config', 'version')) !== null);
          }
          if (shape.cluster) await waitFor(async () => Object.keys(await r.hgetall('postern:nodes')).length === shape.nodes);
          const before = await redisInfo(r);
          const per = Math.floor(d.messages / shape.nodes);
          const results = await Promise.all(
            relays.map((relay, k) =>
              d.runInjector({ host: relay.host, port: relay.port, sessions: Math.max(1, Math.round(d.sessions / shape.nodes)), messages: k === 0 ? d.messages - per * (shape.nodes - 1) : per, size: d.size, domains: ['bench.test'], rate: 0, messagesPerConnection: 0 }),
            ),
          );
          const sent = results.reduce((n, x) => n + x.sent, 0);
          const s = await d.waitDelivered(sink, sent);
          const after = await redisInfo(r);
          const startAt = Math.min(...results.map((x) => x.startAt));
          const res: ClusterRun = {
            label: shape.label,
            nodes: shape.nodes,
            cluster: shape.cluster,
            messages: sent,
            e2eRate: (sent * 1000) / (s.lastAt - startAt),
            acceptP50: median(results.map((x) => x.latencyMs.p50)),
            acceptP99: Math.max(...results.map((x) => x.latencyMs.p99)),
            cpuPer1k: (relays.reduce((c, x) => c + x.cpuSeconds(), 0) * 1000) / sent,
            redisCpuPer1k: ((after.cpu - before.cpu) * 1000) / sent,
            redisTripsPerMessage: (after.trips - before.trips) / sent,
            redisScriptsPerMessage: (after.scripts - before.scripts) / sent,
            peakRssMb: Math.max(...relays.map((x) => x.memory().rssKb / 1024)),
          };
          log(`  ${shape.label}: end-to-end ${fmt(res.e2eRate)} msg/s, accept p50/p99 ${fmt(res.acceptP50, 1)}/${fmt(res.acceptP99, 1)} ms, CPU ${fmt(res.cpuPer1k, 2)} s/1k (Redis ${fmt(res.redisCpuPer1k, 3)} s/1k), Redis ${fmt(res.redisTripsPerMessage, 2)} round trips (${fmt(res.redisScriptsPerMessage, 2)} scripts) per message`);
          report.runs.push(res);
        } finally {
          for (const x of relays) await x.stop();
        }
      }
    }
  } finally {
    r.disconnect();
    await sink.stop();
  }
  return report;
}

async function waitFor(cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('cluster bench: the nodes did not join within 30 s');
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The markdown table of the medians per configuration. */
export function clusterTable(rep: ClusterReport): string {
  const rows = ['| configuration | end-to-end msg/s | accept p50 / p99 ms | node CPU s / 1k msg | Redis CPU s / 1k msg | Redis round trips / msg (scripts) | peak RSS MB (largest node) |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const label of [...new Set(rep.runs.map((x) => x.label))]) {
    const rs = rep.runs.filter((x) => x.label === label);
    const m = (f: (x: ClusterRun) => number, digits = 0) => fmt(median(rs.map(f)), digits);
    rows.push(`| ${label} | ${m((x) => x.e2eRate)} | ${m((x) => x.acceptP50, 1)} / ${m((x) => x.acceptP99, 1)} | ${m((x) => x.cpuPer1k, 2)} | ${m((x) => x.redisCpuPer1k, 3)} | ${m((x) => x.redisTripsPerMessage, 2)} (${m((x) => x.redisScriptsPerMessage, 2)}) | ${m((x) => x.peakRssMb)} |`);
  }
  return rows.join('\n');
}

