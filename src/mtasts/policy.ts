/**
 * MTA-STS (RFC 8461) texts, pure: the `_mta-sts` TXT record (§3.1) and the policy file served
 * at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (§3.2).
 *
 * Where the RFC leaves room, this reading is:
 * - TXT: a record is an MTA-STS record when it begins with `v=STSv1` followed by `;`, blanks
 *   or its end (case-sensitive, as the ABNF's %s says); the others are ignored. Several such
 *   records, or one that breaks the grammar, mean no policy (§3.1). A record with no `id`, or
 *   with more than one, breaks it (which id would count?). Blanks at the end are tolerated.
 * - Policy: fields are `key: value` lines ended by LF or CRLF; blank lines are skipped (the
 *   ABNF has none, but they harm nothing and are common at the end of hand-written files); a
 *   line that is not a well-formed field makes the whole policy invalid, naming the line.
 *   Unknown keys are ignored; of a repeated field other than `mx` the first counts and the
 *   later ones are not even checked (§3.2). `mx` patterns are kept in lower-case A-label form.
 */
import type { StsMode } from '../tls/sources.js';
import { normaliseDomain } from '../tls/names.js';

export type { StsMode };

/** The largest max_age a policy may declare (§3.2: about a year, in seconds). */
export const MAX_AGE_LIMIT = 31_557_600;

// ---------------------------------------------------------------------------------------------
// The TXT record

/** What the `_mta-sts.<domain>` TXT records say, read together. */
export type StsTxtSelection =
  /** No record begins with `v=STSv1`: the domain announces no policy. */
  | { kind: 'none' }
  /** Exactly one MTA-STS record, valid: the policy's current id. */
  | { kind: 'record'; id: string }
  /** One MTA-STS record that breaks the grammar, or several: no policy (§3.1). */
  | { kind: 'invalid'; reason: string };

export type StsRecordParse = { ok: true; id: string; extensions: Record<string, string> } | { ok: false; reason: string };

const STS_PREFIX = /^v=STSv1(?=[ \t]*(?:;|$))/;
const ID = /^[A-Za-z0-9]{1,32}$/;
const EXT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** %x21-3A / %x3C / %x3E-7E: printable ASCII without `;` and `=`. */
const EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;

/** Whether a TXT string is meant as an MTA-STS record (the others at the name are ignored). */
export function isStsRecord(txt: string): boolean {
  return STS_PREFIX.test(txt);
}

/** Parses one TXT string that begins with `v=STSv1` (RFC 8461 §3.1). */
export function parseStsRecord(txt: string): StsRecordParse {
  if (!isStsRecord(txt)) return { ok: false, reason: 'does not begin with v=STSv1' };
  // sts-sep = *WSP ";" *WSP; an optional separator may end the record.
  const fields = txt.replace(/[ \t]+$/, '').split(/[ \t]*;[ \t]*/);
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  fields.shift(); // v=STSv1
  if (fields.length === 0) return { ok: false, reason: 'no id field' };
  let id: string | undefined;
  const extensions: Record<string, string> = {};
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq < 0) return { ok: false, reason: `field ${JSON.stringify(field)} is not name=value` };
    const name = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (name === 'id') {
      if (id !== undefined) return { ok: false, reason: 'more than one id field' };
      if (!ID.test(value)) return { ok: false, reason: `id ${JSON.stringify(value)} is not 1 to 32 letters and digits` };
      id = value;
    } else if (!EXT_NAME.test(name)) {
      return { ok: false, reason: `field name ${JSON.stringify(name)} is not allowed` };
    } else if (!EXT_VALUE.test(value)) {
      return { ok: false, reason: `field ${name} has an empty value or one with a blank, '=' or a control character` };
    } else {
      extensions[name] = value;
    }
  }
  if (id === undefined) return { ok: false, reason: 'no id field' };
  return { ok: true, id, extensions };
}

/** Reads all the TXT records of `_mta-sts.<domain>` as §3.1 says. */
export function selectStsRecord(records: readonly string[]): StsTxtSelection {
  const sts = records.filter(isStsRecord);
  if (sts.length === 0) return { kind: 'none' };
  if (sts.length > 1) return { kind: 'invalid', reason: `${sts.length} TXT records begin with v=STSv1 (there must be exactly one)` };
  const r = parseStsRecord(sts[0]!);
  return r.ok ? { kind: 'record', id: r.id } : { kind: 'invalid', reason: `TXT record ${JSON.stringify(sts[0])}: ${r.reason}` };
}

// ---------------------------------------------------------------------------------------------
// The policy file

export interface StsPolicy {
  mode: StsMode;
  /** Seconds the policy may be cached (0 to MAX_AGE_LIMIT). */
  maxAge: number;
  /** `mx` patterns, lower-case A-labels, `*.` for one leftmost label; empty only under mode none. */
  mx: string[];
}

export type StsPolicyParse = { ok: true; policy: StsPolicy } | { ok: false; reason: string; line?: number };

const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** sts-policy-ext-value: visible characters (and UTF-8), blanks only inside. */
const POLICY_VALUE = /^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$/;
const MODES: readonly StsMode[] = ['enforce', 'testing', 'none'];

/** A `mx` value: a domain name, optionally `*.` before it; in lower-case A-label form, or null. */
export function normaliseMxPattern(value: string): string | null {
  const wildcard = value.startsWith('*.');
  const name = wildcard ? value.slice(2) : value;
  if (name.includes('*') || name.endsWith('.')) return null;
  const n = normaliseDomain(name);
  if (n === null) return null;
  return wildcard ? `*.${n}` : n;
}

/** Parses a policy file (RFC 8461 §3.2). An invalid policy names the line and what is wrong. */
export function parseStsPolicy(text: string): StsPolicyParse {
  const lines = text.split('\n');
  let version: string | undefined;
  let mode: StsMode | undefined;
  let maxAge: number | undefined;
  const mx: string[] = [];
  const fail = (line: number, what: string): StsPolicyParse => ({ ok: false, line, reason: `line ${line}: ${what}` });
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.includes('\r')) return fail(n, 'a carriage return not followed by a line feed');
    if (/^[ \t]*$/.test(line)) continue;
    const colon = line.indexOf(':');
    if (colon < 0) return fail(n, `${JSON.stringify(line)} is not "key: value"`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
    if (!KEY.test(key)) return fail(n, `${JSON.stringify(key)} is not a field name (letters, digits, '_', '-', '.'; at most 32)`);
    if (!POLICY_VALUE.test(value)) return fail(n, value === '' ? `${key} has no value` : `${key} has a control character in its value`);
    switch (key) {
      case 'version':
        if (version !== undefined) break;
        if (value !== 'STSv1') return fail(n, `version ${JSON.stringify(value)} is not STSv1`);
        version = value;
        break;
      case 'mode':
        if (mode !== undefined) break;
        if (!(MODES as readonly string[]).includes(value)) return fail(n, `mode ${JSON.stringify(value)} is not enforce, testing or none`);
        mode = value as StsMode;
        break;
      case 'max_age': {
        if (maxAge !== undefined) break;
        if (!/^[0-9]{1,10}$/.test(value)) return fail(n, `max_age ${JSON.stringify(value)} is not a whole number of seconds`);
        const seconds = Number(value);
        if (seconds > MAX_AGE_LIMIT) return fail(n, `max_age ${value} is more than ${MAX_AGE_LIMIT} seconds`);
        maxAge = seconds;
        break;
      }
      case 'mx': {
        const pattern = normaliseMxPattern(value);
        if (pattern === null) return fail(n, `mx ${JSON.stringify(value)} is not a host name or *. and a domain name`);
        if (!mx.includes(pattern)) mx.push(pattern);
        break;
      }
      default:
        break; // an extension: ignored (§3.2)
    }
  }
  if (version === undefined) return { ok: false, reason: 'no version field (version: STSv1)' };
  if (mode === undefined) return { ok: false, reason: 'no mode field (mode: enforce, testing or none)' };
  if (maxAge === undefined) return { ok: false, reason: 'no max_age field' };
  if (mx.length === 0 && mode !== 'none') return { ok: false, reason: `no mx field (mode ${mode} needs at least one)` };
  return { ok: true, policy: { mode, maxAge, mx } };
}
