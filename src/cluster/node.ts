/**
 * A gateway's membership of the cluster (SPEC §12): keeps its local copy of the configuration at
 * the cluster's version (announced on `postern:config-changed`, and checked every second in case
 * an announcement was missed), seeds an empty Redis from that copy, and writes a heartbeat to
 * hash `postern:nodes` every second. While Redis is away the node runs on its local copy; the
 * condition is said once when it starts and once when it ends.
 */
import type { ConfigStore } from '../config/store.js';
import type { BrokenTlsMemory } from '../delivery/broken-tls.js';
import { localVersion, readNodeState, writeNodeState } from './config-doc.js';
import { CONFIG_CHANNEL, ConfigConflictError, pull, push, type SecretSharing, type SecretsState } from './config-sync.js';
import { connectRedis, type RedisClient } from './connect.js';
import type { Membership } from './membership.js';
import type { ReportAsk } from '../manage/tls-report.js';
import { answerReport, METRICS_TTL_MS, metricsKey, REPORT_CHANNEL, type MetricsJson, type NodeCounts } from './reports.js';

export const NODES_KEY = 'postern:nodes';

export interface NodeHeartbeat {
  node: string;
  heartbeat: number;
  started: number;
  version: number;
  queue: number;
  pid: number;
  certificates: SecretsState;
}

export interface ClusterNodeDeps {
  membership: Membership;
  store: ConfigStore;
  queueSize: () => number;
  /** Called after the local copy changed to the cluster's new version. */
  onConfig: (version: number) => void;
  /** Redis reachable (null) or not (the reason). */
  onTrouble: (reason: string | null) => void;
  /** The node's pending recipients (the first QUEUE_ROWS), for `queue list --cluster`. */
  queueRows?: () => { total: number; rows: unknown[] };
  /** Remembered broken TLS: what this node learns is shared, what others learnt is adopted. */
  brokenTls?: BrokenTlsMemory;
  /** This node's TLS report counts for a window, asked by another node (reports.ts). */
  reportCounts?: (ask: ReportAsk) => NodeCounts;
  /** This node's metrics (prom-client's JSON), put in Redis for a cluster scrape. */
  metrics?: () => Promise<MetricsJson>;
  /** Certificates and keys shared under the cluster secret file (absent: per node). */
  secrets?: SecretSharing;
  /** Where the certificates and keys come from, when that changes. */
  onSecrets?: (state: SecretsState) => void;
}

export const BROKEN_TLS_KEY = 'postern:broken-tls';

/** Pending recipients each node shows the cluster (`queue list --cluster`), and how often (ticks). */
export const QUEUE_ROWS = 1000;
const QUEUE_EVERY = 5;
export const queueKey = (node: string) => `postern:queue:${node}`;

export class ClusterNode {
  private readonly redis: RedisClient;
  private readonly sub: RedisClient;
  private timer: NodeJS.Timeout | null = null;
  private readonly started = Date.now();
  private ticks = 0;
  private readonly brokenToShare = new Map<string, number>();
  private syncing = false;
  private trouble: string | null = null;
  /**
   * Nodes seen alive at the last heartbeat read (this one included), kept in the data directory:
   * a node restarted while Redis is away still knows how many share each limit.
   */
  private alive: number;
  private secrets: SecretsState;

  constructor(private readonly d: ClusterNodeDeps) {
    this.alive = readNodeState(d.store, 'alive') ?? 1;
    this.secrets = d.secrets ? 'shared' : 'per node';
    this.redis = connectRedis(d.membership.url);
    this.sub = connectRedis(d.membership.url);
    this.redis.on('error', (e: Error) => this.setTrouble(e.message));
    this.sub.on('error', () => undefined);
    this.redis.on('ready', () => void this.tick());
    this.sub.on('ready', () => void this.sub.subscribe(CONFIG_CHANNEL, REPORT_CHANNEL).catch(() => undefined));
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === CONFIG_CHANNEL) return void this.sync();
      const counts = this.d.reportCounts;
      if (channel === REPORT_CHANNEL && counts) void answerReport(this.redis, d.membership.node, message, counts).catch(() => undefined);
    });
    if (d.brokenTls) {
      // Shared at the next tick; kept until Redis has taken it (it may be away right now).
      d.brokenTls.onRemember = (address, port, until) => {
        this.brokenToShare.set(`${address}|${port}`, until);
        void this.tick();
      };
    }
  }

  get node(): string {
    return this.d.membership.node;
  }

  get leaseTtlSeconds(): number {
    return this.d.membership.leaseTtlSeconds;
  }

  /** The connection the cluster-wide limits use. */
  get client(): RedisClient {
    return this.redis;
  }

  nodesAlive(): number {
    return this.alive;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 1000);
  }

  private setTrouble(reason: string | null): void {
    if ((reason === null) === (this.trouble === null)) return;
    this.trouble = reason;
    this.d.onTrouble(reason === null ? null : `Redis at ${redact(this.d.membership.url)} unreachable (${reason}); running on the last configuration seen (version ${localVersion(this.d.store)})`);
  }

  private async tick(): Promise<void> {
    await this.sync();
    try {
      const beat: NodeHeartbeat = { node: this.d.membership.node, heartbeat: Date.now(), started: this.started, version: localVersion(this.d.store), queue: this.d.queueSize(), pid: process.pid, certificates: this.secrets };
      await this.redis.hset(NODES_KEY, this.d.membership.node, JSON.stringify(beat));
      const all = Object.values(await this.redis.hgetall(NODES_KEY)).map((v) => JSON.parse(v) as NodeHeartbeat);
      const ttl = this.d.membership.leaseTtlSeconds * 1000;
      if (this.ticks++ % QUEUE_EVERY === 0) {
        if (this.d.queueRows) await this.redis.set(queueKey(this.d.membership.node), JSON.stringify({ at: beat.heartbeat, ...this.d.queueRows() }), 'PX', QUEUE_EVERY * 3000);
        if (this.d.metrics) await this.redis.set(metricsKey(this.d.membership.node), JSON.stringify(await this.d.metrics()), 'PX', METRICS_TTL_MS);
      }
      if (this.d.brokenTls) await this.adoptBrokenTls(beat.heartbeat);
      const alive = Math.max(1, all.filter((n) => beat.heartbeat - n.heartbeat < ttl).length);
      if (alive !== this.alive) writeNodeState(this.d.store, 'alive', alive);
      this.alive = alive;
    } catch {
      /* reported by sync() */
    }
  }

  private async sync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      const r = await pull(this.redis, this.d.store, this.d.secrets);
      this.setTrouble(null);
      if (r.changed) this.d.onConfig(r.version);
      if (r.secrets !== this.secrets) this.d.onSecrets?.((this.secrets = r.secrets));
      // The first node given the secret file puts its certificates and keys in (as a new version).
      if (this.d.secrets && !r.remoteSecrets) await push(this.redis, this.d.store, r.version, this.d.secrets).catch((e: unknown) => {
        if (!(e instanceof ConfigConflictError)) throw e;
      });
    } catch (e) {
      this.setTrouble((e as Error).message);
    } finally {
      this.syncing = false;
    }
  }

  /** Takes what the other nodes remember of broken TLS; forgets what has expired. */
  private async adoptBrokenTls(now: number): Promise<void> {
    for (const [k, until] of [...this.brokenToShare]) {
      await this.redis.hset(BROKEN_TLS_KEY, k, String(until));
      this.brokenToShare.delete(k);
    }
    const all = await this.redis.hgetall(BROKEN_TLS_KEY);
    const expired: string[] = [];
    for (const [k, v] of Object.entries(all)) {
      const bar = k.lastIndexOf('|');
      const until = Number(v);
      if (until <= now) expired.push(k);
      else this.d.brokenTls!.adopt(k.slice(0, bar), Number(k.slice(bar + 1)), until, now);
    }
    if (expired.length > 0) await this.redis.hdel(BROKEN_TLS_KEY, ...expired);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.redis.disconnect();
    this.sub.disconnect();
  }
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(':') ? `${auth.slice(0, auth.indexOf(':'))}:***` : '***'}@`);
}
