/**
 * The cluster's configuration in Redis (SPEC §12): hash `postern:config` holds `version` (a
 * counter), `doc` (the JSON document of config-doc.ts) and `seed` (set while the document is a
 * node's copy put back after Redis came back empty). Every change is a compare-and-set by Lua
 * script: it is written only if the version is still the one the writer started from, so two
 * concurrent writers never silently overwrite each other — the second is told. A change is
 * announced on channel `postern:config-changed`.
 */
import type { ConfigStore } from '../config/store.js';
import { ConfigError } from '../config/store.js';
import type { RedisClient } from './connect.js';
import { exportDoc, importDoc, localVersion, setLocalVersion, type ConfigDoc } from './config-doc.js';

export const CONFIG_KEY = 'postern:config';
export const CONFIG_CHANNEL = 'postern:config-changed';

/** KEYS[1] config hash; ARGV: base version, document, channel. Returns the new version, or -(current version). */
const CAS = `
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return -current end
local v = current + 1
redis.call('HSET', KEYS[1], 'version', v, 'doc', ARGV[2])
redis.call('HDEL', KEYS[1], 'seed')
redis.call('PUBLISH', ARGV[3], v)
return v`;

/** KEYS[1]; ARGV: version, document, channel. Seeds an empty Redis, or replaces an older seed. Returns 1 if written. */
const SEED = `
local current = redis.call('HGET', KEYS[1], 'version')
if current and not (redis.call('HEXISTS', KEYS[1], 'seed') == 1 and tonumber(current) < tonumber(ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'doc', ARGV[2], 'seed', 1)
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`;

export class ConfigConflictError extends ConfigError {
  constructor(readonly current: number, readonly base: number) {
    super(`the cluster's configuration was changed by another node meanwhile (version ${base} became ${current}); this change was not applied: run it again`);
  }
}

/** Redis's version and document, or null when Redis holds none. */
export async function readRemote(redis: RedisClient): Promise<{ version: number; doc: ConfigDoc } | null> {
  const [v, d] = await redis.hmget(CONFIG_KEY, 'version', 'doc');
  if (v === null || d === null) return null;
  return { version: Number(v), doc: JSON.parse(d) as ConfigDoc };
}

/**
 * Brings the local copy up to Redis's version (when Redis is newer); seeds Redis from the local
 * copy when it holds nothing. Returns the version the local copy is at.
 */
export async function pull(redis: RedisClient, store: ConfigStore): Promise<{ version: number; changed: boolean }> {
  const remote = await readRemote(redis);
  const mine = localVersion(store);
  if (remote === null || (await isSeed(redis) && remote.version < mine)) {
    await redis.eval(SEED, 1, CONFIG_KEY, String(Math.max(mine, 1)), JSON.stringify(exportDoc(store)), CONFIG_CHANNEL);
    if (mine === 0) setLocalVersion(store, 1);
    return { version: Math.max(mine, 1), changed: false };
  }
  if (remote.version === mine) return { version: mine, changed: false };
  importDoc(store, remote.doc, remote.version);
  return { version: remote.version, changed: true };
}

async function isSeed(redis: RedisClient): Promise<boolean> {
  return (await redis.hexists(CONFIG_KEY, 'seed')) === 1;
}

/** Writes the local copy as the next version after `base`; a ConfigConflictError when Redis moved on. */
export async function push(redis: RedisClient, store: ConfigStore, base: number): Promise<number> {
  const r = Number(await redis.eval(CAS, 1, CONFIG_KEY, String(base), JSON.stringify(exportDoc(store)), CONFIG_CHANNEL));
  if (r < 0) throw new ConfigConflictError(-r, base);
  setLocalVersion(store, r);
  return r;
}
