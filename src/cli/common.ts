/**
 * Helpers shared by the `postern` subcommands: the --data-dir option and short-lived access to
 * the configuration store.
 */
import { existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { Option } from 'commander';
import { QueueStore } from '../queue/store.js';
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

/** The host name the gateway last started with (its reports' default names), else this machine's. */
export function gatewayHostname(dataDir: string): string {
  if (!existsSync(join(dataDir, 'queue.db'))) return osHostname();
  return withClosing(QueueStore.open(dataDir), (q) => q.fact('hostname')) ?? osHostname();
}

