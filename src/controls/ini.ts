/**
 * The destination-controls import/export file (SPEC §11). Pure: text in, table out, and back.
 *
 * parseImport(text): the whole table a file describes, or every problem in it. Ini style:
 *   `[DEFAULT]` (any case) is the (Default) entry, `[example.com]` / `[.example.com]` one entry
 *   each (IDN U-labels accepted, names normalised with parseDestinationName), `key = value`
 *   lines, `#` and `;` comment lines, blank lines. Keys and keyword values in any case. Never
 *   stops at the first problem: the result lists every error with its 1-based line number (the
 *   section header's line for a key a section lacks; line 1 for a file without [DEFAULT]),
 *   sorted by line, each message naming the key, the value and what is allowed. On success the
 *   entries come in file order, each holding only the settings its section sets.
 *   Beyond the appliance's keys and values, two spellings exist so that every table Postern can
 *   hold has a file form: `recipient_limit = none` (without recipient_minutes) is an explicit
 *   "No Limit", and `limit_type` / `limit_apply` may be `default` in a domain section, which
 *   states the scope the limit rule asks for while still inheriting it.
 *
 * exportFile(defaults, entries): the file for a table whose values are valid (as the store
 *   guarantees): a header comment describing the format, `[DEFAULT]` with every key, then the
 *   entries sorted as LIST sorts them, each with only the keys it sets. Keyword values use the
 *   spellings of SPEC §11's table (PREFER_V6, host, MXIP, system, VG, required_verify, on, …),
 *   numbers plain digits. parseImport(exportFile(d, e)) returns exactly d and e (in sorted order).
 */
import { parseDestinationName, displayName } from './names.js';
import { DestinationTable } from './table.js';
import {
  DANE_MODES,
  INITIAL_DEFAULTS,
  type DaneMode,
  type EnforcePer,
  type Entry,
  type IpPreference,
  type LimitPer,
  type PartialSettings,
  type Settings,
  type TlsMode,
} from './types.js';
import { checkSettings, DEFAULT_TLS_ALERT, parseIntegerIn, RANGES, ValidationError } from './validate.js';

export interface ImportError {
  line: number;
  message: string;
}

export type ImportResult = { ok: true; defaults: Settings; entries: Entry[] } | { ok: false; errors: ImportError[] };

/** The file's keys in the order export writes them (SPEC §11's table). */
export const IMPORT_KEYS = [
  'ip_sort_pref',
  'max_host_concurrency',
  'max_messages_per_connection',
  'recipient_limit',
  'recipient_minutes',
  'limit_type',
  'limit_apply',
  'tls',
  'tls_alert',
  'dane',
  'mta_sts',
  'bounce_validation',
  'bounce_profile',
] as const;
export type ImportKey = (typeof IMPORT_KEYS)[number];

/**
 * Keys [DEFAULT] must set: all but bounce_profile, the recipient pair and Postern's own keys
 * (dane and mta_sts, left out, keep their initial values, so an appliance's file still imports).
 */
const REQUIRED_IN_DEFAULT: readonly ImportKey[] = [
  'ip_sort_pref',
  'max_host_concurrency',
  'max_messages_per_connection',
  'limit_type',
  'limit_apply',
  'tls',
  'bounce_validation',
];

/** Keyword tables: accepted spellings (lower case) → value; the first spelling of each is the one export writes. */
const IP_WORDS: [string, IpPreference][] = [
  ['PREFER_V6', 'ipv6-preferred'],
  ['REQUIRE_V6', 'ipv6-required'],
  ['PREFER_V4', 'ipv4-preferred'],
  ['REQUIRE_V4', 'ipv4-required'],
];
const LIMIT_TYPE_WORDS: [string[], LimitPer][] = [
  [['host', '0'], 'domain'],
  [['MXIP', '1'], 'mx-ip'],
];
const LIMIT_APPLY_WORDS: [string[], EnforcePer][] = [
  [['system', '0'], 'system'],
  [['VG', '1'], 'virtual-gateway'],
];
const TLS_WORDS: [string[], TlsMode][] = [
  [['no', '0'], 'no'],
  [['preferred', '1'], 'preferred'],
  [['required', '2'], 'required'],
  [['preferred_verify', '3'], 'preferred-verify'],
  [['required_verify', '4'], 'required-verify'],
  [['required_verify_hosted', '5'], 'required-verify-hosted'],
];
const BOUNCE_WORDS: [string[], boolean][] = [
  [['off', '0'], false],
  [['on', '1'], true],
];
const DANE_WORDS: [string[], DaneMode][] = DANE_MODES.map((m): [string[], DaneMode] => [[m], m]);

/** "0/no, 1/preferred, …": how the allowed keywords are named in messages. */
function allowedWords<T>(words: [string[], T][]): string {
  return words.map(([w]) => `${w[1]}/${w[0]}`).join(', ');
}

const ALLOWED: Record<ImportKey, string> = {
  ip_sort_pref: IP_WORDS.map(([w]) => w).join(', '),
  max_host_concurrency: `an integer from ${RANGES.concurrency.min} to ${RANGES.concurrency.max.toLocaleString('en-US')}`,
  max_messages_per_connection: `an integer from ${RANGES.messagesPerConnection.min} to ${RANGES.messagesPerConnection.max.toLocaleString('en-US')}`,
  recipient_limit: `an integer from ${RANGES.recipients.min} to ${RANGES.recipients.max.toLocaleString('en-US')}, or none`,
  recipient_minutes: `an integer from ${RANGES.minutes.min} to ${RANGES.minutes.max}`,
  limit_type: allowedWords(LIMIT_TYPE_WORDS),
  limit_apply: allowedWords(LIMIT_APPLY_WORDS),
  tls: allowedWords(TLS_WORDS),
  tls_alert: allowedWords(BOUNCE_WORDS),
  dane: DANE_MODES.join(', '),
  mta_sts: allowedWords(BOUNCE_WORDS),
  bounce_validation: allowedWords(BOUNCE_WORDS),
  bounce_profile: 'a bounce profile name',
};

function lookupWord<T>(words: [string[], T][], raw: string): T | undefined {
  const v = raw.toLowerCase();
  return words.find(([w]) => w.some((s) => s.toLowerCase() === v))?.[1];
}

// ---- parsing ---------------------------------------------------------------------------

/** One section as written: where it starts, what it is, and its key lines. */
interface RawSection {
  line: number;
  header: string;
  /** Normalised destination name; undefined for [DEFAULT] and for an invalid name. */
  name: string | undefined;
  isDefault: boolean;
  /** False for a duplicate, an invalid name or a broken header: checked, but makes no entry. */
  kept: boolean;
  keys: Map<ImportKey, { line: number; value: string }>;
}

/** A section's values after checking each key on its own; 'default' = inherit (scope keys only). */
interface SectionValues {
  ipPreference?: IpPreference;
  concurrency?: number;
  messagesPerConnection?: number;
  recipients?: number | 'none';
  minutes?: number;
  limitPer?: LimitPer | 'default';
  enforce?: EnforcePer | 'default';
  tls?: TlsMode;
  tlsAlert?: boolean;
  dane?: DaneMode;
  mtaSts?: boolean;
  bounceVerification?: boolean;
  bounceProfile?: string;
}

const DEFAULT_SECTION = 'default';

export function parseImport(text: string): ImportResult {
  const errors: ImportError[] = [];
  const err = (line: number, message: string): void => {
    errors.push({ line, message });
  };
  const sections: RawSection[] = [];
  const seen = new Map<string, RawSection>();
  let current: RawSection | undefined;

  // A byte-order mark from a Windows editor is not part of the first line.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((rawLine, i) => {
    const line = i + 1;
    const t = rawLine.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) return;

    if (t.startsWith('[')) {
      const m = /^\[([^\]]*)\]$/.exec(t);
      if (!m) {
        err(line, `malformed line ${JSON.stringify(t)}: a section header is [DEFAULT], [example.com] or [.example.com]`);
        // Keys under a broken header are checked on their own but belong to no entry.
        current = { line, header: t, name: undefined, isDefault: false, kept: false, keys: new Map() };
        sections.push(current);
        return;
      }
      const header = m[1]!.trim();
      const isDefault = header.toLowerCase() === DEFAULT_SECTION;
      let name: string | undefined;
      if (!isDefault) {
        try {
          name = parseDestinationName(header);
        } catch (e) {
          if (!(e instanceof ValidationError)) throw e;
          err(line, `invalid destination name [${header}]: allowed a domain name (example.com) or a subdomain pattern (.example.com)`);
        }
      }
      current = { line, header, name, isDefault, kept: false, keys: new Map() };
      sections.push(current);
      const id = isDefault ? '(Default)' : name;
      if (id !== undefined) {
        const first = seen.get(id);
        if (first) {
          const same = first.header === header ? '' : `, the same entry as [${first.header}]`;
          err(line, `duplicate section [${header}]${same} (first at line ${first.line})`);
        } else {
          seen.set(id, current);
          current.kept = true;
        }
      }
      return;
    }

    const eq = t.indexOf('=');
    const key = eq === -1 ? '' : t.slice(0, eq).trim();
    if (key === '') {
      err(line, `malformed line ${JSON.stringify(t)}: expected [section], key = value, or a # or ; comment`);
      return;
    }
    const value = t.slice(eq + 1).trim();
    const k = key.toLowerCase();
    if (!(IMPORT_KEYS as readonly string[]).includes(k)) {
      err(line, `unknown key ${JSON.stringify(key)}: allowed ${IMPORT_KEYS.join(', ')}`);
      return;
    }
    if (!current) {
      err(line, `key ${k} outside a section: put it under [DEFAULT] or a [domain] header`);
      return;
    }
    const first = current.keys.get(k as ImportKey);
    if (first) {
      err(line, `duplicate key ${k} in [${current.header}] (first at line ${first.line})`);
      return;
    }
    current.keys.set(k as ImportKey, { line, value });
  });

  // Every section is checked, also those that make no entry, so that one import run shows all.
  let defaults: Settings | undefined;
  const entries: Entry[] = [];
  for (const s of sections) {
    const v = checkSection(s, err);
    if (!s.kept) continue;
    if (s.isDefault) defaults = toDefaults(v);
    else if (s.name !== undefined) entries.push({ name: s.name, settings: toPartial(v) });
  }
  if (!sections.some((s) => s.isDefault)) {
    err(1, `missing [DEFAULT] section: the file must have one, setting ${REQUIRED_IN_DEFAULT.join(', ')}`);
  }

  if (errors.length > 0 || defaults === undefined) {
    // Stable sort: errors on one line keep the order they were found in.
    return { ok: false, errors: errors.sort((a, b) => a.line - b.line) };
  }
  return { ok: true, defaults, entries };
}

/** Checks each key's value, then the rules between keys; reports through `err`. */
function checkSection(s: RawSection, err: (line: number, message: string) => void): SectionValues {
  const v: SectionValues = {};
  const bad = (key: ImportKey, line: number, value: string): void => {
    err(line, new ValidationError(key, value, ALLOWED[key]).message);
  };
  for (const [key, { line, value }] of s.keys) {
    switch (key) {
      case 'ip_sort_pref': {
        const p = IP_WORDS.find(([w]) => w.toLowerCase() === value.toLowerCase());
        if (p) v.ipPreference = p[1];
        else bad(key, line, value);
        break;
      }
      case 'max_host_concurrency':
      case 'max_messages_per_connection':
      case 'recipient_minutes': {
        const r =
          key === 'max_host_concurrency' ? RANGES.concurrency : key === 'recipient_minutes' ? RANGES.minutes : RANGES.messagesPerConnection;
        const n = integer(key, value, r.min, r.max, err, line);
        if (n === undefined) break;
        if (key === 'max_host_concurrency') v.concurrency = n;
        else if (key === 'recipient_minutes') v.minutes = n;
        else v.messagesPerConnection = n;
        break;
      }
      case 'recipient_limit':
        if (value.toLowerCase() === 'none') v.recipients = 'none';
        else {
          const n = integer(key, value, RANGES.recipients.min, RANGES.recipients.max, err, line);
          if (n !== undefined) v.recipients = n;
        }
        break;
      case 'limit_type':
      case 'limit_apply': {
        // `default` states the scope while inheriting it; (Default) itself has nothing to inherit.
        if (!s.isDefault && value.toLowerCase() === 'default') {
          if (key === 'limit_type') v.limitPer = 'default';
          else v.enforce = 'default';
          break;
        }
        const allowed = s.isDefault ? ALLOWED[key] : `${ALLOWED[key]}, default`;
        if (key === 'limit_type') {
          const w = lookupWord(LIMIT_TYPE_WORDS, value);
          if (w !== undefined) v.limitPer = w;
          else err(line, new ValidationError(key, value, allowed).message);
        } else {
          const w = lookupWord(LIMIT_APPLY_WORDS, value);
          if (w !== undefined) v.enforce = w;
          else err(line, new ValidationError(key, value, allowed).message);
        }
        break;
      }
      case 'tls': {
        const w = lookupWord(TLS_WORDS, value);
        if (w !== undefined) v.tls = w;
        else bad(key, line, value);
        break;
      }
      case 'tls_alert': {
        if (s.isDefault) {
          err(line, new ValidationError(key, value, DEFAULT_TLS_ALERT).message);
          break;
        }
        const w = lookupWord(BOUNCE_WORDS, value);
        if (w !== undefined) v.tlsAlert = w;
        else bad(key, line, value);
        break;
      }
      case 'dane': {
        const w = lookupWord(DANE_WORDS, value);
        if (w !== undefined) v.dane = w;
        else bad(key, line, value);
        break;
      }
      case 'mta_sts': {
        const w = lookupWord(BOUNCE_WORDS, value);
        if (w !== undefined) v.mtaSts = w;
        else bad(key, line, value);
        break;
      }
      case 'bounce_validation': {
        const w = lookupWord(BOUNCE_WORDS, value);
        if (w !== undefined) v.bounceVerification = w;
        else bad(key, line, value);
        break;
      }
      case 'bounce_profile':
        // The store's rule for profile names, so that import accepts exactly what NEW accepts.
        try {
          v.bounceProfile = checkSettings({ bounceProfile: value }).bounceProfile;
        } catch (e) {
          if (!(e instanceof ValidationError)) throw e;
          err(line, new ValidationError(key, value, e.allowed).message);
        }
        break;
    }
  }

  const has = (k: ImportKey): boolean => s.keys.has(k);
  const lineOf = (k: ImportKey): number => s.keys.get(k)?.line ?? s.line;
  const rl = s.keys.get('recipient_limit');
  if (rl && rl.value.toLowerCase() === 'none') {
    if (has('recipient_minutes')) {
      err(lineOf('recipient_minutes'), `recipient_minutes given with recipient_limit = none in [${s.header}]: No Limit has no minutes, leave recipient_minutes out`);
    }
  } else if (has('recipient_limit') !== has('recipient_minutes')) {
    const given: ImportKey = has('recipient_limit') ? 'recipient_limit' : 'recipient_minutes';
    const missing: ImportKey = given === 'recipient_limit' ? 'recipient_minutes' : 'recipient_limit';
    err(
      lineOf(given),
      `${given} given without ${missing} in [${s.header}]: give both (N recipients per M minutes) or neither`,
    );
  }

  if (s.isDefault) {
    // A second [DEFAULT] is reported as a duplicate; its missing keys would only be noise, since
    // the fix is to merge it into the first.
    if (!s.kept) return v;
    for (const k of REQUIRED_IN_DEFAULT) {
      if (!has(k)) err(s.line, `[${s.header}] must set ${k} (allowed ${ALLOWED[k]})`);
    }
  } else {
    // A limit needs its scope spelled out (as the appliance's file demands); No Limit limits nothing.
    const triggers: ImportKey[] = ['max_host_concurrency'];
    if (rl && rl.value.toLowerCase() !== 'none') triggers.push('recipient_limit');
    for (const t of triggers) {
      if (!has(t)) continue;
      const missing = (['limit_type', 'limit_apply'] as const).filter((k) => !has(k));
      if (missing.length > 0) {
        err(
          lineOf(t),
          `${t} in [${s.header}] needs limit_type and limit_apply in the same section (missing ${missing.join(', ')}; ` +
            `limit_type = ${ALLOWED.limit_type}, default; limit_apply = ${ALLOWED.limit_apply}, default)`,
        );
      }
    }
  }
  return v;
}

/** An integer within range, or undefined after reporting the key, the value and the range. */
function integer(
  key: ImportKey,
  value: string,
  min: number,
  max: number,
  err: (line: number, message: string) => void,
  line: number,
): number | undefined {
  try {
    return parseIntegerIn(key, value, min, max);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    err(line, new ValidationError(key, value, ALLOWED[key]).message);
    return undefined;
  }
}

function recipientLimitOf(v: SectionValues): Settings['recipientLimit'] | undefined {
  if (v.recipients === 'none') return null;
  if (v.recipients !== undefined && v.minutes !== undefined) return { recipients: v.recipients, minutes: v.minutes };
  return undefined;
}

/** Settings in INITIAL_DEFAULTS's key order, so stored JSON looks the same as the store's own. */
function toPartial(v: SectionValues): PartialSettings {
  const out: PartialSettings = {};
  if (v.ipPreference !== undefined) out.ipPreference = v.ipPreference;
  if (v.concurrency !== undefined) out.concurrency = v.concurrency;
  if (v.messagesPerConnection !== undefined) out.messagesPerConnection = v.messagesPerConnection;
  const rl = recipientLimitOf(v);
  if (rl !== undefined) out.recipientLimit = rl;
  if (v.limitPer !== undefined && v.limitPer !== 'default') out.limitPer = v.limitPer;
  if (v.enforce !== undefined && v.enforce !== 'default') out.enforce = v.enforce;
  if (v.tls !== undefined) out.tls = v.tls;
  if (v.tlsAlert !== undefined) out.tlsAlert = v.tlsAlert;
  if (v.dane !== undefined) out.dane = v.dane;
  if (v.mtaSts !== undefined) out.mtaSts = v.mtaSts;
  if (v.bounceVerification !== undefined) out.bounceVerification = v.bounceVerification;
  if (v.bounceProfile !== undefined) out.bounceProfile = v.bounceProfile;
  return out;
}

/** Only called when the section had no errors, so the required keys are all there. */
function toDefaults(v: SectionValues): Settings {
  const p = toPartial(v);
  return {
    ...INITIAL_DEFAULTS,
    ...p,
    recipientLimit: p.recipientLimit ?? INITIAL_DEFAULTS.recipientLimit,
    bounceProfile: p.bounceProfile ?? INITIAL_DEFAULTS.bounceProfile,
  };
}

// ---- export ------------------------------------------------------------------------------

const HEADER = `# Postern destination controls: import with \`postern destconfig import FILE\`.
# [DEFAULT] is the (Default) entry and sets every key; then one section per destination,
# [example.com] for that domain, [.example.com] for its subdomains. A key a destination leaves
# out means Default (the (Default) entry's value at the time of use).
#   ip_sort_pref                 PREFER_V6, REQUIRE_V6, PREFER_V4, REQUIRE_V4
#   max_host_concurrency         1 - 1000
#   max_messages_per_connection  1 - 1000
#   recipient_limit              0 - 1000000000 recipients per recipient_minutes 1 - 60 (both
#   recipient_minutes            or neither); recipient_limit = none alone means No Limit
#   limit_type                   0 or host (entire domain), 1 or MXIP (each MX IP)
#   limit_apply                  0 or system (system wide), 1 or VG (per virtual gateway)
#   tls                          0/no, 1/preferred, 2/required, 3/preferred_verify,
#                                4/required_verify, 5/required_verify_hosted
#   tls_alert                    0/off, 1/on: this destination's own answer to "alert when a
#                                required TLS connection fails" (destinations only; left out,
#                                the global switch, destconfig setup --required-tls-alert)
#   dane                         off, opportunistic, required: DANE (RFC 7672), TLSA records
#                                under DNSSEC make STARTTLS mandatory and authenticate the
#                                MX host; required delivers only through hosts with usable
#                                records (left out of [DEFAULT]: opportunistic)
#   mta_sts                      0/off, 1/on: MTA-STS (RFC 8461), a recipient domain's policy
#                                in enforce mode limits delivery to its listed MX hosts over
#                                verified TLS (left out of [DEFAULT]: on)
#   bounce_validation            0/off, 1/on
#   bounce_profile               a bounce profile name
# max_host_concurrency or recipient_limit needs limit_type and limit_apply in the same section;
# "default" there keeps the (Default) entry's scope.
`;

function word<T>(words: [string[], T][], value: T): string {
  return words.find(([, v]) => v === value)![0][0]!;
}

function keyLines(s: PartialSettings, isDefault: boolean): string[] {
  const out: string[] = [];
  const put = (k: ImportKey, v: string): void => {
    out.push(`${k} = ${v}`);
  };
  if (s.ipPreference !== undefined) put('ip_sort_pref', IP_WORDS.find(([, v]) => v === s.ipPreference)![0]);
  if (s.concurrency !== undefined) put('max_host_concurrency', String(s.concurrency));
  if (s.messagesPerConnection !== undefined) put('max_messages_per_connection', String(s.messagesPerConnection));
  if (s.recipientLimit === null) put('recipient_limit', 'none');
  else if (s.recipientLimit !== undefined) {
    put('recipient_limit', String(s.recipientLimit.recipients));
    put('recipient_minutes', String(s.recipientLimit.minutes));
  }
  // An entry with a limit must name its scope; `default` keeps it inherited, as stored.
  const limited = s.concurrency !== undefined || (s.recipientLimit !== undefined && s.recipientLimit !== null);
  if (s.limitPer !== undefined) put('limit_type', word(LIMIT_TYPE_WORDS, s.limitPer));
  else if (limited && !isDefault) put('limit_type', 'default');
  if (s.enforce !== undefined) put('limit_apply', word(LIMIT_APPLY_WORDS, s.enforce));
  else if (limited && !isDefault) put('limit_apply', 'default');
  if (s.tls !== undefined) put('tls', word(TLS_WORDS, s.tls));
  if (s.tlsAlert !== undefined) put('tls_alert', word(BOUNCE_WORDS, s.tlsAlert));
  if (s.dane !== undefined) put('dane', word(DANE_WORDS, s.dane));
  if (s.mtaSts !== undefined) put('mta_sts', word(BOUNCE_WORDS, s.mtaSts));
  if (s.bounceVerification !== undefined) put('bounce_validation', word(BOUNCE_WORDS, s.bounceVerification));
  if (s.bounceProfile !== undefined) put('bounce_profile', s.bounceProfile);
  return out;
}

export function exportFile(defaults: Settings, entries: Entry[]): string {
  const parts: string[] = [HEADER, '[DEFAULT]', ...keyLines(defaults, true)];
  for (const e of new DestinationTable(defaults, entries).list()) {
    parts.push('');
    const shown = displayName(e.name);
    // The U-label form as a comment, so that a person reading the file recognises the domain.
    if (shown !== e.name) parts.push(`# ${shown.slice(e.name.length + 2, -1)}`);
    // A destination literally named "default" would read back as [DEFAULT]; the trailing dot
    // keeps it a domain and is dropped again by normalisation.
    parts.push(`[${e.name.toLowerCase() === DEFAULT_SECTION ? `${e.name}.` : e.name}]`);
    parts.push(...keyLines(e.settings, false));
  }
  return parts.join('\n') + '\n';
}
