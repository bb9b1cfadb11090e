/**
 * Whether a data directory belongs to a cluster (SPEC §12): `<data-dir>/cluster.json`, written by
 * `postern start --cluster URL --node-name NAME`, read by every command run with that
 * `--data-dir` so that it reads and changes the cluster's configuration, not a local copy. The
 * file may hold a Redis password in its URL, so it is written like a private key (mode 0600).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../controls/validate.js';
import { writeSecretFile } from '../config/secret-file.js';

export interface Membership {
  /** redis://, rediss://, redis+sentinel:// or redis+cluster:// */
  url: string;
  node: string;
  leaseTtlSeconds: number;
  /** Absolute path of the cluster secret file (secrets.ts); absent: certificates stay per node. */
  secretFile?: string;
}

const FILE = 'cluster.json';

export function readMembership(dataDir: string): Membership | null {
  const path = join(dataDir, FILE);
  if (!existsSync(path)) return null;
  const m = JSON.parse(readFileSync(path, 'utf8')) as Membership;
  return m;
}

export function writeMembership(dataDir: string, m: Membership): void {
  writeSecretFile(dataDir, FILE, JSON.stringify(m, null, 2) + '\n');
}

/** Leaves the cluster: the data directory keeps its last configuration as its own. */
export function removeMembership(dataDir: string): void {
  rmSync(join(dataDir, FILE), { force: true });
}

/** A node name: letters, digits, `.`, `-`, `_`, 1 to 63 characters. */
export function parseNodeName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(text)) throw new ValidationError('node name', text, '1 to 63 letters, digits, . - _ (starting with a letter or digit)');
  return text;
}

export function parseClusterUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ValidationError('cluster', text, 'redis://[:PASSWORD@]HOST:PORT[/DB], rediss:// (TLS), redis+sentinel://HOST:PORT[,HOST:PORT]/MASTER or redis+cluster://HOST:PORT[,HOST:PORT]');
  }
  if (!['redis:', 'rediss:', 'redis+sentinel:', 'redis+cluster:'].includes(u.protocol)) {
    throw new ValidationError('cluster', text, 'a URL starting redis://, rediss://, redis+sentinel:// or redis+cluster://');
  }
  return text;
}
