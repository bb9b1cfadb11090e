/**
 * Helpers shared by the `postern` subcommands: the --data-dir option and short-lived access to
 * the configuration store.
 */
import { Option } from 'commander';
import { escapeLines, jsonText } from '../observe/text.js';
import { ConfigStore } from '../config/store.js';
import { DEFAULT_OPTIONS } from '../config/options.js';

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'data directory').default(DEFAULT_OPTIONS.dataDir);
}

/** Runs `fn` with a store opened for one command, and closes the store whatever happens. */
export function withClosing<S extends { close(): void }, T>(s: S, fn: (s: S) => T): T {
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

/** Opens the configuration store for one command and closes it again. */
export function withStore<T>(dataDir: string, fn: (s: ConfigStore) => T): T {
  return withClosing(ConfigStore.open(dataDir), fn);
}

/**
 * Everything a command prints goes through these, so that names and replies that came from
 * peers (certificate names, SMTP replies, envelope fields) never reach the terminal raw.
 */
export function out(text: string): void {
  process.stdout.write(escapeLines(text));
}

export function err(text: string): void {
  process.stderr.write(escapeLines(text));
}

export function outJson(value: unknown): void {
  process.stdout.write(jsonText(value) + '\n');
}
