/**
 * A connection to the cluster's Redis through ioredis (SPEC §12): a single server
 * (`redis://[:PASSWORD@]HOST:PORT[/DB]`, `rediss://` for TLS), Sentinel
 * (`redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`) or Redis Cluster
 * (`redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT…]`). Commands fail at once while Redis is
 * away (no offline queue): callers decide what to do without it.
 */
import { createHash } from 'node:crypto';
import { Redis, Cluster, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

function hostsOf(spec: string): { host: string; port: number }[] {
  return spec.split(',').map((hp) => {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hp.trim());
    if (!m) throw new Error(`bad host in cluster URL: ${hp}`);
    return { host: m[1]!, port: m[2] ? Number(m[2]) : 6379 };
  });
}

export function connectRedis(url: string, o: { lazy?: boolean; retry?: boolean } = {}): RedisClient {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    lazyConnect: o.lazy ?? false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    // A gateway keeps trying to reach Redis; a CLI command gives up at once.
    retryStrategy: o.retry === false ? () => null : (times) => Math.min(times * 200, 2000),
  };
  // The URL's authority may list several hosts, which URL() does not parse: split it by hand.
  const m = /^(redis\+sentinel|redis\+cluster):\/\/(?:([^@]*)@)?([^/]+)(?:\/(.*))?$/.exec(url);
  if (m) {
    const [, scheme, auth, hosts, path] = m;
    const password = auth ? decodeURIComponent(auth.includes(':') ? auth.slice(auth.indexOf(':') + 1) : auth) : undefined;
    if (scheme === 'redis+cluster') return new Cluster(hostsOf(hosts!), { enableOfflineQueue: false, redisOptions: { ...common, password }, lazyConnect: common.lazyConnect });
    const [name, db] = (path ?? '').split('/');
    return new Redis({ ...common, sentinels: hostsOf(hosts!), name: name || 'mymaster', password, sentinelPassword: password, db: db ? Number(db) : 0 });
  }
  return new Redis(url, common);
}

/**
 * Runs a Lua script with one key by its SHA-1 (EVALSHA), sending its text only when Redis does
 * not have it yet (after a restart, or on a new Redis): the window and lease scripts run for every
 * batch, and their text is larger than the rest of the command.
 */
export async function runScript(redis: RedisClient, script: string, key: string, ...args: string[]): Promise<unknown> {
  let sha = SHAS.get(script);
  if (!sha) SHAS.set(script, (sha = createHash('sha1').update(script).digest('hex')));
  try {
    return await redis.evalsha(sha, 1, key, ...args);
  } catch (e) {
    if (!/NOSCRIPT/.test((e as Error).message)) throw e;
    return redis.eval(script, 1, key, ...args);
  }
}

const SHAS = new Map<string, string>();
