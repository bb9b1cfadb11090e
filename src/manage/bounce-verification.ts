/**
 * Bounce verification (SPEC §8) as a service for the CLI (`bvconfig`), the page and the API:
 * keys and the settings for invalid bounces, checked here, stored by
 * config/bounce-verification.ts and config.db's globals, each change audited (never a key text).
 */
import { BvKeyStore, type BvKey, type BvKeyInfo } from '../config/bounce-verification.js';
import type { ConfigStore, GlobalSettings } from '../config/store.js';
import { parseIntegerIn, ValidationError } from '../controls/validate.js';
import type { Recorder } from './audit.js';
import { changeGlobals } from './destinations.js';

export interface BvSettingsInput {
  invalidAction?: string;
  header?: string;
  untaggedValid?: string | boolean;
}

export interface BvSettings {
  invalidAction: GlobalSettings['bvInvalidAction'];
  header: string;
  untaggedValid: boolean;
}

export const bvSettings = (g: GlobalSettings): BvSettings => ({ invalidAction: g.bvInvalidAction, header: g.bvHeader, untaggedValid: g.bvUntaggedValid });

const YES: Record<string, boolean> = { yes: true, on: true, true: true, '1': true, no: false, off: false, false: false, '0': false };

/** `Name: value`: a header field name (RFC 5322 ftext) and a value of printable text on one line. */
export function parseHeader(text: string): string {
  const m = /^([\x21-\x39\x3b-\x7e]{1,76}):[ \t]*([\x20-\x7e]{1,900})$/.exec(text.trim());
  if (!m || m[2]!.trim() === '') throw new ValidationError('invalid bounce header', text, 'Name: value on one line (printable ASCII), e.g. X-Invalid-Bounce: yes');
  return `${m[1]}: ${m[2]!.trim()}`;
}

export function checkBvSettingsInput(input: BvSettingsInput): Partial<GlobalSettings> {
  const changes: Partial<GlobalSettings> = {};
  if (input.invalidAction !== undefined) {
    const a = input.invalidAction.trim().toLowerCase();
    if (a !== 'reject' && a !== 'add-header') throw new ValidationError('invalid bounce action', input.invalidAction, 'reject, add-header');
    changes.bvInvalidAction = a;
  }
  if (input.header !== undefined) changes.bvHeader = parseHeader(input.header);
  if (input.untaggedValid !== undefined) {
    const v = typeof input.untaggedValid === 'boolean' ? input.untaggedValid : YES[input.untaggedValid.trim().toLowerCase()];
    if (v === undefined) throw new ValidationError('untagged bounces valid', input.untaggedValid, 'yes, no');
    changes.bvUntaggedValid = v;
  }
  return changes;
}

export class BvService {
  private readonly keys: BvKeyStore;

  constructor(
    private readonly config: ConfigStore,
    dataDir: string,
    private readonly record: Recorder,
  ) {
    this.keys = new BvKeyStore(config, dataDir);
  }

  listKeys(): BvKeyInfo[] {
    return this.keys.list();
  }

  /** The key's text: only when asked for (`key list --show`). */
  keyText(number: number | string): string {
    return this.keys.text(keyNumber(number));
  }

  addKey(text?: string): BvKey {
    const k = this.keys.add(text);
    this.record('bv.key.add', `key ${k.number}`, { given: text !== undefined });
    return k;
  }

  retireKey(number: number | string): BvKeyInfo {
    const k = this.keys.retire(keyNumber(number));
    this.record('bv.key.retire', `key ${k.number}`);
    return k;
  }

  settings(): BvSettings {
    return bvSettings(this.config.globals());
  }

  setup(input: BvSettingsInput): BvSettings {
    return bvSettings(changeGlobals(this.config, this.record, { action: 'bv.setup', target: 'bounce verification', view: bvSettings }, checkBvSettingsInput(input)));
  }
}

function keyNumber(v: number | string): number {
  return parseIntegerIn('key number', typeof v === 'string' ? v.trim() : v, 0, 9);
}
