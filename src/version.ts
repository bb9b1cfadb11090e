/** Postern's version, from package.json (one source; `postern --version` and the log use it). */
import { readFileSync } from 'node:fs';

function read(): string {
  try {
    // dist/src/version.js and src/version.ts are both two levels below the package root.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const VERSION = read();
