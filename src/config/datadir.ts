/**
 * The data directory, checked before anything is opened in it.
 *
 * prepareDataDir(dir, { create }): makes sure `dir` is a directory Postern can use, creating it
 *   (mode 0700) when `create` is true, and throws a DataDirError naming the path and the reason
 *   otherwise: missing (for commands that only read: a mistyped path is an error, not an empty
 *   queue), not a directory, permission denied, read-only file system, or a pseudo file system
 *   such as /proc where nothing can be stored.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

export class DataDirError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`data directory ${resolve(path)}: ${reason}`);
  }
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'exists and is not a directory',
  ENOSPC: 'no space left on the device',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links in the path',
};

function reasonOf(e: unknown): string {
  const code = (e as { code?: string }).code ?? '';
  return REASONS[code] ?? (e instanceof Error ? e.message : String(e));
}

export function prepareDataDir(dir: string, o: { create: boolean }): void {
  const abs = resolve(dir);
  if (abs === '/proc' || abs.startsWith('/proc/') || abs === '/sys' || abs.startsWith('/sys/')) {
    throw new DataDirError(dir, 'a kernel pseudo file system cannot hold data');
  }
  let exists = true;
  try {
    const st = statSync(abs);
    if (!st.isDirectory()) throw new DataDirError(dir, 'exists and is not a directory');
  } catch (e) {
    if (e instanceof DataDirError) throw e;
    if ((e as { code?: string }).code !== 'ENOENT') throw new DataDirError(dir, reasonOf(e));
    exists = false;
  }
  if (!exists) {
    if (!o.create) throw new DataDirError(dir, 'does not exist (no gateway has used it yet; check --data-dir)');
    try {
      mkdirSync(abs, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new DataDirError(dir, reasonOf(e));
    }
  }
  try {
    accessSync(abs, o.create ? constants.R_OK | constants.W_OK | constants.X_OK : constants.R_OK | constants.X_OK);
  } catch (e) {
    throw new DataDirError(dir, reasonOf(e));
  }
}
