/**
 * Helpers shared by the `postern` subcommands: the --data-dir option and short-lived access to
 * the configuration store.
 */
import { Option } from 'commander';
import { ConfigStore } from '../config/store.js';
import { DEFAULT_OPTIONS } from '../config/options.js';

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'data directory').default(DEFAULT_OPTIONS.dataDir);
}

/** Opens the configuration store for one command and closes it again. */
export function withStore<T>(dataDir: string, fn: (s: ConfigStore) => T): T {
  const s = ConfigStore.open(dataDir);
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

export function out(text: string): void {
  process.stdout.write(text);
}
