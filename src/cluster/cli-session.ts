/**
 * A CLI command run with a cluster node's `--data-dir` (SPEC §12) works on the cluster's
 * configuration: before it runs, the node's local copy is brought up to Redis's version; after
 * it ran, a changed copy is written to Redis as the next version by compare-and-set. When
 * another node wrote in between, or Redis cannot be reached, the local copy is put back and the
 * command fails saying so: nothing is changed anywhere. With a cluster secret file, certificates
 * and bounce-verification keys are part of what is compared, pushed and put back.
 */

/** The local copy as it was before the command: what is compared with after it, and put back. */
interface Base {
  version: number;
  doc: string;
  secrets: string | null;
}

/** The secret sharing of a node's data directory (its membership names the file), if any. */
export function secretSharing(dataDir: string, m: Membership): SecretSharing | undefined {
  return m.secretFile ? { box: ClusterSecret.fromFile(m.secretFile), dataDir } : undefined;
}

function snapshot(store: ConfigStore, version: number, s: SecretSharing | undefined): Base {
  return { version, doc: JSON.stringify(exportDoc(store)), secrets: s ? JSON.stringify(exportSecrets(store, s.dataDir)) : null };
}
import { ConfigError, ConfigStore } from '../config/store.js';
import { exportDoc, importDoc, localVersion, type ConfigDoc } from './config-doc.js';
import { ConfigConflictError, adoptRemote, pull, push, type SecretSharing } from './config-sync.js';
import { ClusterSecret, exportSecrets, importSecrets, type SecretsDoc } from './secrets.js';
import { connectRedis, type RedisClient } from './connect.js';
import { redact } from './node.js';
import { readMembership, type Membership } from './membership.js';

export class ClusterCliSession {
  private constructor(
    private readonly dataDir: string,
    private readonly membership: Membership,
    private readonly redis: RedisClient | null,
    private readonly base: Base,
    readonly offlineReason: string | null,
    private readonly secrets: SecretSharing | undefined,
  ) {}

  static async begin(dataDir: string, membership: Membership): Promise<ClusterCliSession> {
    const secrets = secretSharing(dataDir, membership);
    const redis = connectRedis(membership.url, { lazy: true, retry: false });
    redis.on('error', () => undefined);
    let offline: string | null = null;
    const store = ConfigStore.open(dataDir);
    try {
      try {
        await redis.connect();
        await pull(redis, store, secrets);
      } catch (e) {
        offline = (e as Error).message;
      }
      return new ClusterCliSession(dataDir, membership, offline ? null : redis, snapshot(store, localVersion(store), secrets), offline, secrets);
    } finally {
      store.close();
      if (offline) redis.disconnect();
    }
  }

  get version(): number {
    return this.base.version;
  }

  get where(): string {
    return `Redis at ${redact(this.membership.url)}`;
  }

  /** After the command: writes a changed configuration to the cluster, or puts the local copy back. */
  async finish(): Promise<number | null> {
    const store = ConfigStore.open(this.dataDir);
    try {
      const now = snapshot(store, this.base.version, this.secrets);
      if (now.doc === this.base.doc && now.secrets === this.base.secrets) return null;
      const restore = () => {
        if (this.secrets && this.base.secrets !== null) importSecrets(store, this.dataDir, JSON.parse(this.base.secrets) as SecretsDoc);
        importDoc(store, JSON.parse(this.base.doc) as ConfigDoc, this.base.version);
      };
      if (!this.redis) {
        restore();
        throw new ConfigError(`${this.where} cannot be reached (${this.offlineReason}): the cluster's configuration cannot be changed now; nothing was changed`);
      }
      try {
        return await push(this.redis, store, this.base.version, this.secrets);
      } catch (e) {
        restore();
        if (e instanceof ConfigConflictError) {
          // Show the newer configuration from now on.
          await adoptRemote(this.redis, store, this.secrets).catch(() => undefined);
          throw e;
        }
        throw new ConfigError(`${this.where}: the change could not be written (${(e as Error).message}); nothing was changed`);
      }
    } finally {
      store.close();
      this.redis?.disconnect();
    }
  }

  close(): void {
    this.redis?.disconnect();
  }
}

/**
 * Runs a command that reads the cluster itself (status, every node's queue) with a connection to
 * its Redis; a data directory outside a cluster, or Redis away, is a ConfigError saying so.
 */
export async function withClusterRedis<T>(dataDir: string, fn: (redis: RedisClient, m: Membership) => Promise<T>): Promise<T> {
  const m = readMembership(dataDir);
  if (!m) throw new ConfigError(`${dataDir} does not belong to a cluster (postern start --cluster URL --node-name NAME joins one)`);
  const redis = connectRedis(m.url, { lazy: true, retry: false });
  redis.on('error', () => undefined);
  try {
    await redis.connect().catch((e: Error) => {
      throw new ConfigError(`Redis at ${redact(m.url)} cannot be reached: ${e.message}`);
    });
    return await fn(redis, m);
  } finally {
    redis.disconnect();
  }
}
