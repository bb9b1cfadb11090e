/**
 * The TLS Connections report and the metrics of a whole cluster (SPEC §12): each node's counts,
 * put in Redis, summed.
 *
 * - TLS report: a node asking publishes the ask on `postern:report-request`; every node alive
 *   answers with its own counts for that window (from its report.db) into hash
 *   `postern:report-reply:<id>` (kept 30 s); the asker sums what arrived within a few seconds and
 *   names any node that did not answer. Asked on demand rather than copied into Redis as they
 *   grow, because a year of per-domain counts for thousands of domains would cost Redis far more
 *   memory than the answer to one question does.
 * - Metrics: every node puts its Prometheus metrics (prom-client's JSON) in
 *   `postern:metrics:<node>` every few seconds (expiring after 15 s); a cluster scrape sums the
 *   live nodes' with prom-client's AggregatorRegistry (counters, gauges, histogram buckets).
 *   Process and Node.js runtime figures are left out: a sum of start times means nothing.
 */
import { randomBytes } from 'node:crypto';
import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];
import { reportAsk, reportOf, type ReportAsk, type SeriesPoint } from '../manage/tls-report.js';
import { withClusterRedis } from './cli-session.js';
import { REPORT_COLUMNS, zeroCounts, type ReportRow } from '../observe/tls-report.js';
import type { RedisClient } from './connect.js';
import type { SessionRow } from '../observe/tlsrpt.js';
import { NODES_KEY, type NodeHeartbeat } from './node.js';

export const REPORT_CHANNEL = 'postern:report-request';
export const replyKey = (id: string) => `postern:report-reply:${id}`;
export const metricsKey = (node: string) => `postern:metrics:${node}`;
const REPLY_TTL_MS = 30_000;
export const METRICS_TTL_MS = 15_000;

export interface ReportRequest extends ReportAsk {
  id: string;
}

export interface NodeCounts {
  rows: ReportRow[];
  series: SeriesPoint[];
  /** Answers to a `tlsrpt` ask: the node's TLS sessions (the report adds up equal ones). */
  sessions?: SessionRow[];
}

/** Who sends a policy domain's report of a day: the first node to set this key (kept a week). */
export const tlsRptClaimKey = (day: string, domain: string) => `postern:tlsrpt-claim:${day}:${domain}`;

/** Claims the sending of a report for `node`; true when it is this node's, else the node that has it. */
export async function claimTlsRpt(redis: RedisClient, node: string, day: string, domain: string): Promise<true | string> {
  const key = tlsRptClaimKey(day, domain);
  if ((await redis.set(key, node, 'PX', 7 * 86_400_000, 'NX')) === 'OK') return true;
  const holder = await redis.get(key);
  return holder === null || holder === node ? true : holder;
}

/** The nodes whose last heartbeat is younger than the lease TTL. */
export async function aliveNodes(redis: RedisClient, leaseTtlSeconds: number, now = Date.now()): Promise<string[]> {
  const beats = Object.values(await redis.hgetall(NODES_KEY)).map((v) => JSON.parse(v) as NodeHeartbeat);
  return beats.filter((b) => now - b.heartbeat < leaseTtlSeconds * 1000).map((b) => b.node).sort();
}

/** A node's answer to an ask published on REPORT_CHANNEL. */
export async function answerReport(redis: RedisClient, node: string, message: string, counts: (ask: ReportAsk) => NodeCounts): Promise<void> {
  const req = JSON.parse(message) as ReportRequest;
  if (typeof req.id !== 'string' || !/^[0-9a-f]{16}$/.test(req.id)) return;
  const key = replyKey(req.id);
  const t = req.tlsrpt;
  const tlsrpt = t && typeof t.day === 'string' && typeof t.domain === 'string' ? { tlsrpt: { day: t.day, domain: t.domain } } : {};
  await redis.hset(key, node, JSON.stringify(counts({ from: req.from, to: req.to, bucketMs: req.bucketMs, ...(req.domain ? { domain: req.domain } : {}), ...tlsrpt })));
  await redis.pexpire(key, REPLY_TTL_MS);
}

/** Sums several nodes' counts: rows by domain, the series by bucket start. */
export function sumCounts(answers: NodeCounts[]): NodeCounts {
  const rows = new Map<string, ReportRow>();
  const series = new Map<number, SeriesPoint>();
  const sessions = answers.flatMap((a) => a.sessions ?? []);
  for (const a of answers) {
    for (const r of a.rows) {
      const sum = rows.get(r.domain) ?? { domain: r.domain, ...zeroCounts() };
      for (const c of REPORT_COLUMNS) sum[c] += r[c];
      rows.set(r.domain, sum);
    }
    for (const p of a.series) {
      const sum = series.get(p.start) ?? { start: p.start, tls: 0, clear: 0 };
      sum.tls += p.tls;
      sum.clear += p.clear;
      series.set(p.start, sum);
    }
  }
  return { rows: [...rows.values()], series: [...series.values()].sort((a, b) => a.start - b.start), ...(sessions.length ? { sessions } : {}) };
}

/** Asks every node alive for its counts and sums them; names the nodes that did not answer in time. */
export async function askCluster(redis: RedisClient, leaseTtlSeconds: number, ask: ReportAsk, waitMs = 3000): Promise<NodeCounts & { nodes: string[]; missing: string[] }> {
  const alive = await aliveNodes(redis, leaseTtlSeconds);
  const id = randomBytes(8).toString('hex');
  await redis.publish(REPORT_CHANNEL, JSON.stringify({ id, ...ask } satisfies ReportRequest));
  const until = Date.now() + waitMs;
  let got: Record<string, string> = {};
  for (;;) {
    got = await redis.hgetall(replyKey(id));
    if (alive.every((n) => n in got) || Date.now() >= until) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await redis.del(replyKey(id));
  const nodes = Object.keys(got).sort();
  return { ...sumCounts(Object.values(got).map((v) => JSON.parse(v) as NodeCounts)), nodes, missing: alive.filter((n) => !(n in got)) };
}

/** Every live node's TLS sessions to a policy domain on a day (for its RFC 8460 report). */
export async function askTlsRptSessions(redis: RedisClient, leaseTtlSeconds: number, day: string, domain: string): Promise<{ sessions: SessionRow[]; nodes: string[]; missing: string[] }> {
  const c = await askCluster(redis, leaseTtlSeconds, { from: 0, to: 0, bucketMs: 1, tlsrpt: { day, domain } });
  return { sessions: c.sessions ?? [], nodes: c.nodes, missing: c.missing };
}

/** The same from a node's data directory (the CLI). */
export function clusterTlsRptSessions(dataDir: string, day: string, domain: string) {
  return withClusterRedis(dataDir, (redis, m) => askTlsRptSessions(redis, m.leaseTtlSeconds, day, domain));
}

/** Whether a metric is one of Postern's own (not the process's or the runtime's). */
export function ownMetric(m: { name: string }): boolean {
  return !m.name.startsWith('postern_process_') && !m.name.startsWith('postern_nodejs_');
}

/** The Prometheus text of every live node's metrics summed, with how many nodes are in the sum. */
export async function clusterMetrics(redis: RedisClient, leaseTtlSeconds: number, own: { node: string; metrics: MetricsJson }): Promise<{ contentType: string; text: string }> {
  const others = (await aliveNodes(redis, leaseTtlSeconds)).filter((n) => n !== own.node);
  // One GET each: under Redis Cluster the keys live in different slots.
  const stored = await Promise.all(others.map((n) => redis.get(metricsKey(n))));
  const sets = [own.metrics, ...stored.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as MetricsJson)].map((ms) => ms.filter(ownMetric));
  const registry = AggregatorRegistry.aggregate(sets);
  const nodes = new Gauge({ name: 'postern_cluster_nodes_reporting', help: 'Nodes whose metrics are in this sum', registers: [registry] });
  nodes.set(sets.length);
  return { contentType: registry.contentType, text: await registry.metrics() };
}

/**
 * The TLS Connections report of the whole cluster a data directory belongs to (the CLI, the page
 * and the API): every node's counts summed, with the nodes that answered and those that did not.
 */
export async function clusterTlsReport(dataDir: string, q: { last?: string; from?: string; to?: string; domain?: string }, now: number) {
  const ask = reportAsk(q, now);
  return withClusterRedis(dataDir, async (redis, m) => {
    const c = await askCluster(redis, m.leaseTtlSeconds, ask);
    return { ...reportOf(ask, c.rows, c.series), nodes: c.nodes, missing: c.missing };
  });
}

/** The metrics of the cluster a node's data directory belongs to, this node's own taken live. */
export async function clusterMetricsOf(dataDir: string, own: () => Promise<MetricsJson>): Promise<{ contentType: string; text: string }> {
  return withClusterRedis(dataDir, async (redis, m) => clusterMetrics(redis, m.leaseTtlSeconds, { node: m.node, metrics: await own() }));
}

/** One line for people: which nodes a cluster report sums, and which did not answer. */
export function nodesLine(r: { nodes: string[]; missing: string[] }): string {
  return `Nodes summed: ${r.nodes.join(', ') || 'none'}${r.missing.length ? `; no answer from ${r.missing.join(', ')} (their counts are missing)` : ''}`;
}
