/**
 * Validation of destination-control values (SPEC §1). Pure.
 * Every rejection names the field, the value given and what is allowed, so that the CLI, the
 * dialogue, the import file and the web page all say the same thing.
 */
import {
  DANE_MODES,
  IP_PREFERENCES,
  TLS_MODES,
  type DaneMode,
  type IpPreference,
  type PartialSettings,
  type RecipientLimit,
  type Settings,
  type TlsMode,
} from './types.js';

export class ValidationError extends Error {
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`invalid ${field} ${JSON.stringify(value)}: allowed ${allowed}`);
    this.name = 'ValidationError';
  }
}

/** Why the (Default) entry has no TLS alert setting of its own. */
export const DEFAULT_TLS_ALERT = 'only in a destination entry (for (Default), the global switch: destconfig setup --required-tls-alert)';

export const RANGES = {
  concurrency: { min: 1, max: 1000 },
  messagesPerConnection: { min: 1, max: 1000 },
  recipients: { min: 0, max: 1_000_000_000 },
  minutes: { min: 1, max: 60 },
} as const;

/** An integer within [min, max], from a number or a decimal string (thousands separators allowed). */
export function parseIntegerIn(field: string, value: unknown, min: number, max: number): number {
  const allowed = `an integer from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}`;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*\d{1,3}(,?\d{3})*\s*$|^\s*\d+\s*$/.test(value)) n = Number(value.replace(/[,\s]/g, ''));
  else throw new ValidationError(field, value, allowed);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ValidationError(field, value, allowed);
  return n;
}

export function parseTlsMode(value: unknown, field = 'TLS support'): TlsMode {
  if (typeof value === 'string' && (TLS_MODES as readonly string[]).includes(value.toLowerCase())) return value.toLowerCase() as TlsMode;
  throw new ValidationError(field, value, TLS_MODES.join(', '));
}

export function parseIpPreference(value: unknown, field = 'IP address preference'): IpPreference {
  if (typeof value === 'string' && (IP_PREFERENCES as readonly string[]).includes(value.toLowerCase())) {
    return value.toLowerCase() as IpPreference;
  }
  throw new ValidationError(field, value, IP_PREFERENCES.join(', '));
}

export function parseDaneMode(value: unknown, field = 'DANE'): DaneMode {
  if (typeof value === 'string' && (DANE_MODES as readonly string[]).includes(value.toLowerCase())) return value.toLowerCase() as DaneMode;
  throw new ValidationError(field, value, DANE_MODES.join(', '));
}

export function checkRecipientLimit(limit: RecipientLimit): RecipientLimit {
  return {
    recipients: parseIntegerIn('recipients', limit.recipients, RANGES.recipients.min, RANGES.recipients.max),
    minutes: parseIntegerIn('recipient minutes', limit.minutes, RANGES.minutes.min, RANGES.minutes.max),
  };
}

/** Checks every present setting; returns a clean copy or throws the first ValidationError. */
export function checkSettings(s: PartialSettings): PartialSettings {
  const out: PartialSettings = {};
  if (s.ipPreference !== undefined) out.ipPreference = parseIpPreference(s.ipPreference);
  if (s.concurrency !== undefined) {
    out.concurrency = parseIntegerIn('concurrent connections', s.concurrency, RANGES.concurrency.min, RANGES.concurrency.max);
  }
  if (s.messagesPerConnection !== undefined) {
    out.messagesPerConnection = parseIntegerIn(
      'maximum messages per connection',
      s.messagesPerConnection,
      RANGES.messagesPerConnection.min,
      RANGES.messagesPerConnection.max,
    );
  }
  if (s.recipientLimit !== undefined) out.recipientLimit = s.recipientLimit === null ? null : checkRecipientLimit(s.recipientLimit);
  if (s.limitPer !== undefined) {
    if (s.limitPer !== 'domain' && s.limitPer !== 'mx-ip') throw new ValidationError('apply limits per', s.limitPer, 'domain, mx-ip');
    out.limitPer = s.limitPer;
  }
  if (s.enforce !== undefined) {
    if (s.enforce !== 'system' && s.enforce !== 'virtual-gateway') {
      throw new ValidationError('enforce limits', s.enforce, 'system, virtual-gateway');
    }
    out.enforce = s.enforce;
  }
  if (s.tls !== undefined) out.tls = parseTlsMode(s.tls);
  if (s.dane !== undefined) out.dane = parseDaneMode(s.dane);
  if (s.mtaSts !== undefined) {
    if (typeof s.mtaSts !== 'boolean') throw new ValidationError('MTA-STS', s.mtaSts, 'on, off');
    out.mtaSts = s.mtaSts;
  }
  if (s.bounceVerification !== undefined) {
    if (typeof s.bounceVerification !== 'boolean') throw new ValidationError('bounce verification', s.bounceVerification, 'on, off');
    out.bounceVerification = s.bounceVerification;
  }
  if (s.tlsAlert !== undefined) {
    if (typeof s.tlsAlert !== 'boolean') throw new ValidationError('required TLS alert', s.tlsAlert, 'on, off');
    out.tlsAlert = s.tlsAlert;
  }
  if (s.bounceProfile !== undefined) {
    if (typeof s.bounceProfile !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(s.bounceProfile)) {
      throw new ValidationError('bounce profile', s.bounceProfile, 'a profile name of 1 to 64 letters, digits, _ . -');
    }
    out.bounceProfile = s.bounceProfile;
  }
  return out;
}

/** The (Default) entry must hold every setting, and none that only an entry holds. */
export function checkDefaults(s: Settings): Settings {
  if ((s as PartialSettings).tlsAlert !== undefined) throw new ValidationError('required TLS alert', (s as PartialSettings).tlsAlert, DEFAULT_TLS_ALERT);
  const c = checkSettings(s);
  return { ...s, ...c, recipientLimit: c.recipientLimit ?? null } as Settings;
}
