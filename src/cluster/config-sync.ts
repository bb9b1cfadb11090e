/**
 * The cluster's configuration in Redis (SPEC §12): hash `postern:config` holds `version` (a
 * counter), `doc` (the JSON document of config-doc.ts) and `seed` (set while the document is a
 * node's copy put back after Redis came back empty). Every change is a compare-and-set by Lua
 * script: it is written only if the version is still the one the writer started from, so two
 * concurrent writers never silently overwrite each other — the second is told. A change is
 * announced on channel `postern:config-changed`.
 *
 * With a cluster secret file (secrets.ts), fields `secrets` (the sealed certificates and keys)
 * and `secrets-check` travel in the same writes. A node given another secret file never
 * replaces them: its own certificates stay per node, and it says so.
 */
import type { ConfigStore } from '../config/store.js';
import { ConfigError } from '../config/store.js';
import type { RedisClient } from './connect.js';
import { exportDoc, importDoc, localVersion, setLocalVersion, type ConfigDoc } from './config-doc.js';
import { exportSecrets, importSecrets, type ClusterSecret, type SecretsDoc } from './secrets.js';

export const CONFIG_KEY = 'postern:config';
export const CONFIG_CHANNEL = 'postern:config-changed';

/** ARGV[4] sealed secrets or '', ARGV[5] their check: written unless sealed with another secret. */
const WRITE_SECRETS = `
if ARGV[4] ~= '' then
  local check = redis.call('HGET', KEYS[1], 'secrets-check')
  if (not check) or check == ARGV[5] then redis.call('HSET', KEYS[1], 'secrets', ARGV[4], 'secrets-check', ARGV[5]) end
end`;

/** KEYS[1] config hash; ARGV: base version, document, channel, secrets, check. Returns the new version, or -(current version). */
const CAS = `
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return -current end
local v = current + 1
redis.call('HSET', KEYS[1], 'version', v, 'doc', ARGV[2])
redis.call('HDEL', KEYS[1], 'seed')
${WRITE_SECRETS}
redis.call('PUBLISH', ARGV[3], v)
return v`;

/** KEYS[1]; ARGV: version, document, channel, secrets, check. Seeds an empty Redis, or replaces an older seed. Returns 1 if written. */
const SEED = `
local current = redis.call('HGET', KEYS[1], 'version')
if current and not (redis.call('HEXISTS', KEYS[1], 'seed') == 1 and tonumber(current) < tonumber(ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'doc', ARGV[2], 'seed', 1)
${WRITE_SECRETS}
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`;

/** Certificates and keys shared under a secret file: the box and the data directory of the key files. */
export interface SecretSharing {
  box: ClusterSecret;
  dataDir: string;
}

/** Where this node's certificates and keys come from. */
export type SecretsState = 'per node' | 'shared' | 'other secret file';

export function secretsState(remote: Remote | null, s: SecretSharing | undefined): SecretsState {
  if (!s) return 'per node';
  return remote?.secretsCheck && remote.secretsCheck !== s.box.check ? 'other secret file' : 'shared';
}

function sealedSecrets(store: ConfigStore, s: SecretSharing | undefined): [string, string] {
  return s ? [s.box.seal(JSON.stringify(exportSecrets(store, s.dataDir))), s.box.check] : ['', ''];
}

/** The remote version into the local copy: the secrets first, so the version is set last. */
function importRemote(store: ConfigStore, remote: Remote, s: SecretSharing | undefined): void {
  if (s && remote.secrets && remote.secretsCheck === s.box.check) importSecrets(store, s.dataDir, JSON.parse(s.box.open(remote.secrets)) as SecretsDoc);
  importDoc(store, remote.doc, remote.version);
}

export class ConfigConflictError extends ConfigError {
  constructor(readonly current: number, readonly base: number) {
    super(`the cluster's configuration was changed by another node meanwhile (version ${base} became ${current}); this change was not applied: run it again`);
  }
}

export interface Remote {
  version: number;
  doc: ConfigDoc;
  secrets: string | null;
  secretsCheck: string | null;
}

/** Redis's version and document, or null when Redis holds none. */
export async function readRemote(redis: RedisClient): Promise<Remote | null> {
  const [v, d, secrets, secretsCheck] = await redis.hmget(CONFIG_KEY, 'version', 'doc', 'secrets', 'secrets-check');
  if (v === null || d === null) return null;
  return { version: Number(v), doc: JSON.parse(d) as ConfigDoc, secrets, secretsCheck };
}

/** The remote configuration (when Redis holds one) into the local copy; after a refused change. */
export async function adoptRemote(redis: RedisClient, store: ConfigStore, s?: SecretSharing): Promise<void> {
  const remote = await readRemote(redis);
  if (remote) importRemote(store, remote, s);
}

/**
 * Brings the local copy up to Redis's version (when Redis is newer); seeds Redis from the local
 * copy when it holds nothing. Returns the version the local copy is at.
 */
export async function pull(redis: RedisClient, store: ConfigStore, s?: SecretSharing): Promise<{ version: number; changed: boolean; secrets: SecretsState; remoteSecrets: boolean }> {
  const remote = await readRemote(redis);
  const mine = localVersion(store);
  if (remote === null || (await isSeed(redis) && remote.version < mine)) {
    await redis.eval(SEED, 1, CONFIG_KEY, String(Math.max(mine, 1)), JSON.stringify(exportDoc(store)), CONFIG_CHANNEL, ...sealedSecrets(store, s));
    if (mine === 0) setLocalVersion(store, 1);
    return { version: Math.max(mine, 1), changed: false, secrets: secretsState(remote, s), remoteSecrets: !!s };
  }
  const state = { secrets: secretsState(remote, s), remoteSecrets: remote.secrets !== null };
  if (remote.version === mine) return { version: mine, changed: false, ...state };
  importRemote(store, remote, s);
  return { version: remote.version, changed: true, ...state };
}

async function isSeed(redis: RedisClient): Promise<boolean> {
  return (await redis.hexists(CONFIG_KEY, 'seed')) === 1;
}

/** Writes the local copy as the next version after `base`; a ConfigConflictError when Redis moved on. */
export async function push(redis: RedisClient, store: ConfigStore, base: number, s?: SecretSharing): Promise<number> {
  const r = Number(await redis.eval(CAS, 1, CONFIG_KEY, String(base), JSON.stringify(exportDoc(store)), CONFIG_CHANNEL, ...sealedSecrets(store, s)));
  if (r < 0) throw new ConfigConflictError(-r, base);
  setLocalVersion(store, r);
  return r;
}
