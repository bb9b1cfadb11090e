/**
 * Bounce address tag validation (BATV, draft-levine-smtp-batv; SPEC §8). Pure.
 *
 * tagAddress(address, key, now): `joe@example.org` → `prvs=KDDDSSSSSS=joe@example.org`, where
 *   K is the key's number (0-9), DDD the UTC day number (days since 1970-01-01) on which the tag
 *   expires — the sending day plus 7 — modulo 1000, and SSSSSS the first three bytes, lower-case
 *   hex, of HMAC-SHA1 keyed with the key text over `K` + `DDD` + the address in lower case. The
 *   null sender and an address already tagged are returned unchanged.
 * parseTag(address): the parts of a tagged address, in either order — `prvs=TAG=local@domain`
 *   (the draft's) or `prvs=local=TAG@domain` (the appliance's) — or null for an untagged one.
 * checkTag(tag, keys, now, rule): whether a tag vouches for the address. `strict` (bounces): a
 *   known key (active, or retired less than 7 days ago), not expired, made no later than today,
 *   and the hash matching. `lenient` (replies, mail with a real sender): any stored key and the
 *   hash matching; the date is not checked (the appliance's rule for non-bounces).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Days a tag verifies after it is made, and a retired key after it is retired. */
export const TAG_LIFETIME_DAYS = 7;
const DAY_MS = 86_400_000;

export interface TagKey {
  number: number;
  text: string;
  /** When the key was retired (ms), or null while active. */
  retiredAt: number | null;
}

export interface ParsedTag {
  keyNumber: number;
  /** DDD: the expiry day modulo 1000. */
  day: number;
  hash: string;
  /** The address without its tag. */
  original: string;
  order: 'draft' | 'appliance';
}

export type TagCheck = { valid: true } | { valid: false; reason: string };

/** UTC day number of `ms`. */
export function dayNumber(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

function hashOf(keyText: string, keyNumber: number, ddd: string, address: string): string {
  return createHmac('sha1', keyText).update(`${keyNumber}${ddd}${address.toLowerCase()}`, 'ascii').digest('hex').slice(0, 6);
}

export function tagAddress(address: string, key: { number: number; text: string }, now: number): string {
  if (address === '' || parseTag(address) !== null) return address;
  const at = address.lastIndexOf('@');
  if (at <= 0) return address;
  const ddd = String((dayNumber(now) + TAG_LIFETIME_DAYS) % 1000).padStart(3, '0');
  return `prvs=${key.number}${ddd}${hashOf(key.text, key.number, ddd, address)}=${address}`;
}

const TAG = /^(\d)(\d{3})([0-9a-f]{6})$/i;

export function parseTag(address: string): ParsedTag | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!/^prvs=/i.test(local)) return null;
  const rest = local.slice(5);
  // prvs=TAG=local: the tag is the first part.
  const first = rest.indexOf('=');
  if (first > 0) {
    const m = TAG.exec(rest.slice(0, first));
    const orig = rest.slice(first + 1);
    if (m && orig.length > 0) return parts(m, `${orig}@${domain}`, 'draft');
  }
  // prvs=local=TAG: the tag is the last part.
  const last = rest.lastIndexOf('=');
  if (last > 0) {
    const m = TAG.exec(rest.slice(last + 1));
    const orig = rest.slice(0, last);
    if (m && orig.length > 0) return parts(m, `${orig}@${domain}`, 'appliance');
  }
  return null;
}

function parts(m: RegExpExecArray, original: string, order: ParsedTag['order']): ParsedTag {
  return { keyNumber: Number(m[1]), day: Number(m[2]), hash: m[3]!.toLowerCase(), original, order };
}

export function checkTag(tag: ParsedTag, keys: readonly TagKey[], now: number, rule: 'strict' | 'lenient'): TagCheck {
  const key = keys.find((k) => k.number === tag.keyNumber);
  if (!key) return { valid: false, reason: `unknown key ${tag.keyNumber}` };
  const ddd = String(tag.day).padStart(3, '0');
  const expected = Buffer.from(hashOf(key.text, key.number, ddd, tag.original), 'ascii');
  if (!timingSafeEqual(expected, Buffer.from(tag.hash, 'ascii'))) return { valid: false, reason: 'the hash does not match' };
  if (rule === 'lenient') return { valid: true };
  if (key.retiredAt !== null && now - key.retiredAt >= TAG_LIFETIME_DAYS * DAY_MS) {
    return { valid: false, reason: `key ${key.number} was retired more than ${TAG_LIFETIME_DAYS} days ago` };
  }
  // Days until the tag expires, modulo 1000: 0..7 is a tag made in the last 7 days.
  const left = (((tag.day - dayNumber(now)) % 1000) + 1000) % 1000;
  if (left > TAG_LIFETIME_DAYS) {
    return { valid: false, reason: left > 500 ? `the tag expired ${1000 - left} ${1000 - left === 1 ? 'day' : 'days'} ago` : 'the tag is dated in the future' };
  }
  return { valid: true };
}
