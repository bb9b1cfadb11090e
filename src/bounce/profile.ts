/**
 * Bounce profiles (SPEC §7): how long and how often a soft failure is retried, whether and
 * where bounces and delay warnings go. Pure and synchronous: time is passed in (ms since the
 * epoch), nothing here reads a clock or storage.
 *
 * Contract:
 * - BounceProfile / DEFAULT_PROFILE: the fields and the `Default` profile's values of SPEC §7.
 * - PROFILE_RANGES / checkProfile(input): validates every field of a complete candidate profile
 *   (numbers or decimal strings, `on`/`off`/`yes`/`no` or booleans, `none` or an address) and
 *   returns a clean BounceProfile; the first bad field throws a ValidationError naming the field,
 *   the value and what is allowed. checkProfileName(name) does the same for a name.
 * - retryDelaySeconds(p, n): the wait after the n-th failed attempt, doubling from the initial
 *   wait up to the maximum.
 * - exhausted(p, attemptsMade, receivedAt, now): why a soft failure is now final (retries or
 *   time in queue used up), or null. `attemptsMade` counts every attempt, the first included.
 * - delayWarningDue(p, attemptsMade, warningsSent, lastWarningAt, now): whether a soft failure
 *   that is retried should now send a delay warning (on, from the second attempt, at most
 *   delayWarningMax per recipient, no more often than the interval).
 * - dsnAddressOf(p, sender, isBounce): where this message's DSNs go (the alternate address or the
 *   sender), or null when no DSN may ever be sent for it (null sender, or itself a DSN).
 */
import { parseIntegerIn, ValidationError } from '../controls/validate.js';
import { normaliseDomain } from '../tls/names.js';

/** The only DSN format: RFC 3464 delivery-status inside an RFC 6522 multipart/report. */
export const DSN_FORMATS = ['rfc3464'] as const;
export type DsnFormat = (typeof DSN_FORMATS)[number];

export interface BounceProfile {
  name: string;
  /** Delivery attempts (the first included) before a soft failure becomes hard; 0 behaves as 1. */
  maxRetries: number;
  /** Seconds a message may stay in the queue. */
  maxQueueSeconds: number;
  initialRetrySeconds: number;
  maxRetrySeconds: number;
  sendHardBounces: boolean;
  dsnFormat: DsnFormat;
  /** Largest original message copied whole into a DSN, in bytes; larger ones get their headers. */
  maxBounceCopy: number;
  delayWarnings: boolean;
  /** Minimum seconds between two delay warnings for one recipient. */
  delayWarningInterval: number;
  /** Most delay warnings sent for one recipient. */
  delayWarningMax: number;
  /** Receives bounces and delay warnings instead of the sender; null = the sender. */
  alternateAddress: string | null;
}

export const DEFAULT_PROFILE_NAME = 'Default';

export const DEFAULT_PROFILE: BounceProfile = {
  name: DEFAULT_PROFILE_NAME,
  maxRetries: 100,
  maxQueueSeconds: 259_200,
  initialRetrySeconds: 60,
  maxRetrySeconds: 3600,
  sendHardBounces: true,
  dsnFormat: 'rfc3464',
  maxBounceCopy: 10 * 1024,
  delayWarnings: false,
  delayWarningInterval: 14_400,
  delayWarningMax: 1,
  alternateAddress: null,
};

/** Allowed ranges of the numeric fields (inclusive). maxRetrySeconds must also be ≥ initialRetrySeconds. */
export const PROFILE_RANGES = {
  maxRetries: { min: 0, max: 10_000 },
  maxQueueSeconds: { min: 0, max: 3_000_000 },
  initialRetrySeconds: { min: 60, max: 86_400 },
  maxRetrySeconds: { min: 60, max: 86_400 },
  maxBounceCopy: { min: 0, max: 10_485_760 },
  delayWarningInterval: { min: 60, max: 3_000_000 },
  delayWarningMax: { min: 1, max: 100 },
} as const;

/** The words used for each field in messages, the CLI's detail and the dialogue. */
export const PROFILE_FIELD_LABELS: Record<Exclude<keyof BounceProfile, 'name'>, string> = {
  maxRetries: 'maximum retries',
  maxQueueSeconds: 'maximum time in queue',
  initialRetrySeconds: 'initial retry wait',
  maxRetrySeconds: 'maximum retry wait',
  sendHardBounces: 'send hard bounces',
  dsnFormat: 'DSN format',
  maxBounceCopy: 'maximum bounce copy',
  delayWarnings: 'delay warnings',
  delayWarningInterval: 'delay warning interval',
  delayWarningMax: 'maximum delay warnings',
  alternateAddress: 'alternate address',
};

export const PROFILE_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** A profile's fields as given by a user: any may be a string still to parse. */
export type ProfileInput = { [K in keyof BounceProfile]?: unknown };

export function checkProfileName(name: unknown): string {
  if (typeof name !== 'string' || !PROFILE_NAME_PATTERN.test(name)) {
    throw new ValidationError('profile name', name, '1 to 64 letters, digits, _ . -');
  }
  return name;
}

function flag(field: string, v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const w = v.trim().toLowerCase();
    if (w === 'on' || w === 'yes' || w === 'y') return true;
    if (w === 'off' || w === 'no' || w === 'n') return false;
  }
  throw new ValidationError(field, v, 'on, off');
}

/** `local@domain`, the domain stored in A-label form; `none` or empty for no address. */
export function parseAlternateAddress(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const field = PROFILE_FIELD_LABELS.alternateAddress;
  if (typeof v !== 'string') throw new ValidationError(field, v, 'an email address (local@domain), or none');
  const s = v.trim();
  if (s === '' || s.toLowerCase() === 'none') return null;
  const at = s.lastIndexOf('@');
  const local = at > 0 ? s.slice(0, at) : '';
  const domain = at > 0 ? normaliseDomain(s.slice(at + 1)) : null;
  if (domain === null || local.length > 64 || !/^[^\s<>()[\]\\,;:@"]+$/.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    throw new ValidationError(field, v, 'an email address (local@domain), or none');
  }
  return `${local}@${domain}`;
}

function integer(key: keyof typeof PROFILE_RANGES, v: unknown): number {
  const r = PROFILE_RANGES[key];
  return parseIntegerIn(PROFILE_FIELD_LABELS[key], v, r.min, r.max);
}

/** Validates a complete candidate profile; returns it clean or throws the first ValidationError. */
export function checkProfile(p: ProfileInput): BounceProfile {
  const name = checkProfileName(p.name);
  const initialRetrySeconds = integer('initialRetrySeconds', p.initialRetrySeconds);
  const maxRetrySeconds = integer('maxRetrySeconds', p.maxRetrySeconds);
  if (maxRetrySeconds < initialRetrySeconds) {
    throw new ValidationError(
      PROFILE_FIELD_LABELS.maxRetrySeconds,
      p.maxRetrySeconds,
      `an integer from ${initialRetrySeconds.toLocaleString('en-US')} (the initial retry wait) to ${PROFILE_RANGES.maxRetrySeconds.max.toLocaleString('en-US')}`,
    );
  }
  const format = typeof p.dsnFormat === 'string' ? p.dsnFormat.trim().toLowerCase() : p.dsnFormat;
  if (!(DSN_FORMATS as readonly unknown[]).includes(format)) {
    throw new ValidationError(PROFILE_FIELD_LABELS.dsnFormat, p.dsnFormat, DSN_FORMATS.join(', '));
  }
  return {
    name,
    maxRetries: integer('maxRetries', p.maxRetries),
    maxQueueSeconds: integer('maxQueueSeconds', p.maxQueueSeconds),
    initialRetrySeconds,
    maxRetrySeconds,
    sendHardBounces: flag(PROFILE_FIELD_LABELS.sendHardBounces, p.sendHardBounces),
    dsnFormat: format as DsnFormat,
    maxBounceCopy: integer('maxBounceCopy', p.maxBounceCopy),
    delayWarnings: flag(PROFILE_FIELD_LABELS.delayWarnings, p.delayWarnings),
    delayWarningInterval: integer('delayWarningInterval', p.delayWarningInterval),
    delayWarningMax: integer('delayWarningMax', p.delayWarningMax),
    alternateAddress: parseAlternateAddress(p.alternateAddress),
  };
}

/** The wait after the n-th failed attempt (n ≥ 1): doubling from the initial wait up to the maximum. */
export function retryDelaySeconds(p: BounceProfile, attemptsMade: number): number {
  const n = Math.max(1, attemptsMade);
  const wait = p.initialRetrySeconds * 2 ** Math.min(n - 1, 40);
  return Math.min(wait, p.maxRetrySeconds);
}

/** A soft failure becomes hard when the retries or the time in queue run out. */
export function exhausted(p: BounceProfile, attemptsMade: number, receivedAt: number, now: number): string | null {
  if (attemptsMade >= p.maxRetries) return `maximum retries (${p.maxRetries}) reached`;
  if ((now - receivedAt) / 1000 >= p.maxQueueSeconds) return `maximum time in queue (${p.maxQueueSeconds} s) reached`;
  return null;
}

/**
 * Whether a soft failure that will be retried sends a delay warning now: delay warnings on, at
 * least two attempts made, fewer than delayWarningMax warnings sent for the recipient, and the
 * last one (if any) at least delayWarningInterval seconds ago. The caller calls it only for a
 * 4xx / connection failure that is deferred, never for one that has just become a bounce.
 */
export function delayWarningDue(p: BounceProfile, attemptsMade: number, warningsSent: number, lastWarningAt: number | null, now: number): boolean {
  if (!p.delayWarnings) return false;
  if (attemptsMade < 2) return false;
  if (warningsSent >= p.delayWarningMax) return false;
  if (lastWarningAt !== null && now - lastWarningAt < p.delayWarningInterval * 1000) return false;
  return true;
}

/** Where DSNs about a message go, or null when none may be sent (never a bounce for a bounce). */
export function dsnAddressOf(p: BounceProfile, sender: string, isBounce: boolean): string | null {
  if (sender === '' || isBounce) return null;
  return p.alternateAddress ?? sender;
}
