/**
 * The world of the `internet` bench scenario: thousands of recipient domains on a thousand MX
 * hosts with the faults real destinations have, the messages sent to them, and the destination
 * table both relays are configured with. Pure and deterministic: everything follows from the
 * seed (a mulberry32 PRNG written here, never Math.random). The shapes are bench/internet-types.ts.
 *
 *   makeWorld(o)            the world (defaults: 10,000 domains, 1,000 hosts, 100,000 messages,
 *                           200 table entries, seed 1). Each part (hosts, domains, messages, table)
 *                           draws from its own stream of the seed, so a world with fewer messages
 *                           has the same hosts and domains as the full one.
 *     hosts                 mx<k>.hosts.internet.test (k from 1) on 127.0.100.1 … 127.0.100.250,
 *                           127.0.101.1 … (never .0 or .255); delay 40 ms, 5 % of hosts 300 ms;
 *                           faults on disjoint random subsets: 3 % refuse, 2 % never-greet,
 *                           5 % rcpt-4xx, 10 % no-starttls, 2 % tls-fail, the rest none.
 *     domains               d<k>.internet.test (k from 1); 80 % one MX host, 20 % two (distinct),
 *                           drawn from a reshuffled deck of the hosts so every host serves about
 *                           the same number of domains. MX preferences 10, 20 in that order.
 *     messages              1–5 recipients (60 % one, 20 % two, 10 % three, 6 % four, 4 % five);
 *                           domains drawn from a Zipf distribution (exponent 1.1) over a random
 *                           ranking of the domains; 80 % of multi-recipient messages at one
 *                           domain; local parts u<n>, ~5 % soft<n> (n unique in the world, so
 *                           every recipient address is unique); sizes 2–100 KiB, log-uniform.
 *     table                 entries for distinct domains, half among the 100 busiest (by
 *                           recipients in `messages`), the rest at random; TLS mix 15 % no,
 *                           45 % preferred, 15 % required, 15 % preferred-verify, 10 %
 *                           required-verify; concurrency 2–50; messages per connection 1–100;
 *                           30 % with a recipient window of M minutes (1–5) and N recipients with
 *                           N ≥ ceil(volume · M / 3), so the domain's whole volume fits in 3
 *                           minutes of windows.
 *     defaults              tls preferred, concurrency 20, messages per connection 50, no window.
 *   expectedFate(w, addr)   what must become of a recipient (see the function).
 *   tableImportFile(w)      the SPEC §11 file; imports with `postern destconfig import FILE`.
 *                           [DEFAULT] also sets dane = off and mta_sts = off, so that Postern,
 *                           like Postfix, consults no recipient-side policy (the bench zone
 *                           publishes none; this saves a TXT/TLSA look-up per domain).
 *   zoneOf(w, {ttl})        the bench DNS server's records (test/peers/dns-server.ts Zone).
 *   summary(w)              a few lines for the bench log.
 */
import type { Zone } from '../test/peers/dns-server.js';
import { mulberry32 } from '../test/tools/prng.js';
import type { Domain, Expected, HostFault, Message, MxHost, TableEntry, TlsSetting, World } from './internet-types.js';

export const INTERNET_DOMAIN = 'internet.test';
export const HOSTS_DOMAIN = `hosts.${INTERNET_DOMAIN}`;

export const WORLD_DEFAULTS = { seed: 1, domains: 10_000, hosts: 1_000, messages: 100_000, tableEntries: 200 } as const;

/** Shares of hosts by fault (the rest: none), assigned to disjoint random subsets. */
export const FAULT_SHARES: readonly [HostFault, number][] = [
  ['refuse', 0.03],
  ['never-greet', 0.02],
  ['rcpt-4xx', 0.05],
  ['no-starttls', 0.1],
  ['tls-fail', 0.02],
];
export const FAR_HOST_SHARE = 0.05;
export const NEAR_DELAY_MS = 40;
export const FAR_DELAY_MS = 300;
export const TWO_MX_SHARE = 0.2;
/** Messages with 1, 2, 3, 4, 5 recipients. */
export const RECIPIENT_COUNT_SHARES: readonly number[] = [0.6, 0.2, 0.1, 0.06, 0.04];
export const SAME_DOMAIN_SHARE = 0.8;
export const SOFT_SHARE = 0.05;
export const ZIPF_EXPONENT = 1.1;
export const MIN_SIZE = 2 * 1024;
export const MAX_SIZE = 100 * 1024;
export const TLS_SHARES: readonly [TlsSetting, number][] = [
  ['no', 0.15],
  ['preferred', 0.45],
  ['required', 0.15],
  ['preferred-verify', 0.15],
  ['required-verify', 0.1],
];
export const WINDOW_SHARE = 0.3;
/** A windowed domain's whole volume fits in this many minutes of windows. */
export const WINDOW_BUDGET_MINUTES = 3;
/** Table entries are chosen half among this many busiest domains. */
export const BUSIEST = 100;

export const DEFAULT_ENTRY: Readonly<TableEntry> = { domain: '(Default)', tls: 'preferred', concurrency: 20, messagesPerConnection: 50 };

// ---- randomness ----------------------------------------------------------------------------

export { mulberry32 };

/**
 * The k-th independent stream of a seed: hosts, domains, messages and the table each draw from
 * their own, so a world with fewer messages has the same hosts and domains.
 */
function stream(seed: number, k: number): () => number {
  return mulberry32((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0);
}

/** An integer in [min, max]. */
function intIn(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

/** Fisher–Yates, in place. */
function shuffle<T>(rand: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** 0 … n-1 in random order. */
function permutation(rand: () => number, n: number): number[] {
  return shuffle(
    rand,
    Array.from({ length: n }, (_, i) => i),
  );
}

/** Labels in exact proportions (rounded, the remainder the `rest` label), in random order. */
function proportioned<T>(rand: () => number, n: number, shares: readonly [T, number][], rest: T): T[] {
  const out: T[] = [];
  for (const [label, share] of shares) {
    const k = Math.min(Math.round(share * n), n - out.length);
    for (let i = 0; i < k; i++) out.push(label);
  }
  while (out.length < n) out.push(rest);
  return shuffle(rand, out);
}

// ---- names -----------------------------------------------------------------------------------

export const hostName = (k: number): string => `mx${k}.${HOSTS_DOMAIN}`;
export const domainName = (k: number): string => `d${k}.${INTERNET_DOMAIN}`;

/** The address of host index i (0-based): 127.0.100.1 … 127.0.100.250, 127.0.101.1 …. */
export function hostAddress(i: number): string {
  const third = 100 + Math.floor(i / 250);
  if (!Number.isInteger(i) || i < 0 || third > 255) throw new RangeError(`host index ${i} has no loopback address (at most ${156 * 250} hosts)`);
  return `127.0.${third}.${(i % 250) + 1}`;
}

/** The domain part of `local@domain`, lower-case, without a trailing dot. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  if (at === -1) throw new Error(`not an address: ${JSON.stringify(address)}`);
  return address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

function localOf(address: string): string {
  return address.slice(0, address.lastIndexOf('@'));
}

// ---- the world -------------------------------------------------------------------------------

export interface WorldOptions {
  seed?: number;
  domains?: number;
  hosts?: number;
  messages?: number;
  tableEntries?: number;
}

function count(name: string, v: number | undefined, def: number, min: number): number {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be an integer ≥ ${min}, not ${n}`);
  return n;
}

export function makeWorld(o: WorldOptions = {}): World {
  const seed = (o.seed ?? WORLD_DEFAULTS.seed) >>> 0;
  const nHosts = count('hosts', o.hosts, WORLD_DEFAULTS.hosts, 2);
  const nDomains = count('domains', o.domains, WORLD_DEFAULTS.domains, 1);
  const nMessages = count('messages', o.messages, WORLD_DEFAULTS.messages, 0);
  const nTable = Math.min(count('tableEntries', o.tableEntries, WORLD_DEFAULTS.tableEntries, 0), nDomains);
  hostAddress(nHosts - 1); // throws when there are more hosts than addresses

  const hosts = makeHosts(stream(seed, 1), nHosts);
  const domains = makeDomains(stream(seed, 2), nDomains, nHosts);
  const messages = makeMessages(stream(seed, 3), domains, nMessages);
  const table = makeTable(stream(seed, 4), domains, messages, nTable);
  return { seed, hosts, domains, table, defaults: { ...DEFAULT_ENTRY }, messages };
}

function makeHosts(rand: () => number, n: number): MxHost[] {
  const faults = proportioned(rand, n, FAULT_SHARES, 'none' as HostFault);
  const far = new Set(permutation(rand, n).slice(0, Math.round(FAR_HOST_SHARE * n)));
  return faults.map((fault, i) => ({
    name: hostName(i + 1),
    address: hostAddress(i),
    delayMs: far.has(i) ? FAR_DELAY_MS : NEAR_DELAY_MS,
    fault,
  }));
}

function makeDomains(rand: () => number, n: number, nHosts: number): Domain[] {
  const twoMx = new Set(permutation(rand, n).slice(0, Math.round(TWO_MX_SHARE * n)));
  // A deck of the hosts, reshuffled when used up: every host serves about as many domains.
  let deck: number[] = [];
  const draw = (not?: number): number => {
    if (deck.length === 0) deck = permutation(rand, nHosts);
    let h = deck.pop()!;
    if (h === not) {
      if (deck.length === 0) deck = permutation(rand, nHosts);
      const again = deck.pop()!;
      if (again === not) {
        // Only possible right after a reshuffle with `not` at the end: take the next one.
        deck.unshift(again);
        h = deck.pop()!;
      } else {
        deck.unshift(h);
        h = again;
      }
    }
    return h;
  };
  return Array.from({ length: n }, (_, i) => {
    const first = draw();
    const mx = twoMx.has(i) ? [first, draw(first)] : [first];
    return { name: domainName(i + 1), mx };
  });
}

/** Cumulative Zipf weights over ranks 1 … n. */
function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) {
    sum += 1 / Math.pow(r + 1, s);
    cdf[r] = sum;
  }
  for (let r = 0; r < n; r++) cdf[r] = cdf[r]! / sum;
  return cdf;
}

function pickRank(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function makeMessages(rand: () => number, domains: Domain[], n: number): Message[] {
  const byRank = permutation(rand, domains.length);
  const cdf = zipfCdf(domains.length, ZIPF_EXPONENT);
  const pickDomain = (): string => domains[byRank[pickRank(cdf, rand())]!]!.name;
  const countCdf: number[] = [];
  RECIPIENT_COUNT_SHARES.reduce((acc, s) => {
    countCdf.push(acc + s);
    return acc + s;
  }, 0);
  const logMin = Math.log(MIN_SIZE);
  const logSpan = Math.log(MAX_SIZE) - logMin;
  let seq = 0;
  const messages: Message[] = [];
  for (let m = 0; m < n; m++) {
    const u = rand();
    let k = countCdf.findIndex((c) => u < c) + 1;
    if (k === 0) k = RECIPIENT_COUNT_SHARES.length;
    const oneDomain = k === 1 || rand() < SAME_DOMAIN_SHARE;
    const shared = oneDomain ? pickDomain() : undefined;
    const to: string[] = [];
    for (let r = 0; r < k; r++) {
      const domain = shared ?? pickDomain();
      const local = rand() < SOFT_SHARE ? `soft${++seq}` : `u${++seq}`;
      to.push(`${local}@${domain}`);
    }
    const size = Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.round(Math.exp(logMin + rand() * logSpan))));
    messages.push({ to, size });
  }
  return messages;
}

/** Recipients per domain name in the world's messages (domains without any are absent). */
export function recipientsByDomain(world: Pick<World, 'messages'>): Map<string, number> {
  const volume = new Map<string, number>();
  for (const m of world.messages) for (const a of m.to) {
    const d = domainOf(a);
    volume.set(d, (volume.get(d) ?? 0) + 1);
  }
  return volume;
}

/** The smallest window that carries `volume` recipients within the budget: ceil(volume · minutes / 3), at least 1. */
export function minWindowRecipients(volume: number, minutes: number): number {
  return Math.max(1, Math.ceil((volume * minutes) / WINDOW_BUDGET_MINUTES));
}

function makeTable(rand: () => number, domains: Domain[], messages: Message[], n: number): TableEntry[] {
  const volume = recipientsByDomain({ messages });
  const order = domains.map((_, i) => i);
  order.sort((a, b) => (volume.get(domains[b]!.name) ?? 0) - (volume.get(domains[a]!.name) ?? 0) || a - b);
  const busiest = order.slice(0, Math.min(BUSIEST, domains.length));
  const nBusy = Math.min(Math.floor(n / 2), busiest.length);
  const chosen = shuffle(rand, busiest.slice()).slice(0, nBusy);
  const taken = new Set(chosen);
  const rest = shuffle(
    rand,
    order.filter((i) => !taken.has(i)),
  );
  chosen.push(...rest.slice(0, n - nBusy));
  chosen.sort((a, b) => a - b);

  const tls = proportioned(rand, n, TLS_SHARES, 'preferred' as TlsSetting);
  const windowed = new Set(permutation(rand, n).slice(0, Math.round(WINDOW_SHARE * n)));
  return chosen.map((di, i) => {
    const domain = domains[di]!.name;
    const e: TableEntry = { domain, tls: tls[i]!, concurrency: intIn(rand, 2, 50), messagesPerConnection: intIn(rand, 1, 100) };
    if (windowed.has(i)) {
      const minutes = intIn(rand, 1, 5);
      const base = minWindowRecipients(volume.get(domain) ?? 0, minutes);
      // Up to a quarter more than the least that fits, so windows differ but still shape delivery.
      e.window = { recipients: base + intIn(rand, 0, Math.floor(base / 4)), minutes };
    }
    return e;
  });
}

// ---- what must become of a recipient ------------------------------------------------------

interface Index {
  domains: Map<string, Domain>;
  table: Map<string, TableEntry>;
}
const indexes = new WeakMap<World, Index>();

function indexOf(world: World): Index {
  let ix = indexes.get(world);
  if (!ix) {
    ix = {
      domains: new Map(world.domains.map((d) => [d.name.toLowerCase(), d])),
      table: new Map(world.table.map((e) => [e.domain.toLowerCase(), e])),
    };
    indexes.set(world, ix);
  }
  return ix;
}

/** The entry that governs a domain: its table entry, else the defaults. */
export function entryFor(world: World, domain: string): TableEntry {
  return indexOf(world).table.get(domain.toLowerCase()) ?? world.defaults;
}

const requiresTls = (tls: TlsSetting): boolean => tls === 'required' || tls === 'required-verify';

/**
 * What must become of a recipient, from the world alone (Postern and Postfix configured alike):
 * the MX hosts are tried in order under the domain's TLS setting (table entry, else defaults).
 *   refuse, never-greet                        → next host
 *   no-starttls: required*                     → next host; no / preferred* → delivered (clear)
 *   tls-fail:    required*                     → next host; preferred* → delivered (a later
 *                                                attempt, in clear: the failure is remembered /
 *                                                Postfix falls back); no → delivered
 *   rcpt-4xx                                   → delivered, but a `soft…` local part is deferred
 *                                                with that host's 451 (no next host: a reply to
 *                                                RCPT is the recipient's answer)
 *   none                                       → delivered
 * No host delivers → deferred, `why` naming each host's reason. Certificates are valid for each
 * host's name and trusted, so the verify settings pass wherever TLS comes up.
 * Throws for a domain the world does not have.
 */
export function expectedFate(world: World, address: string): Expected {
  const domainName = domainOf(address);
  const domain = indexOf(world).domains.get(domainName);
  if (!domain) throw new Error(`${address}: domain ${domainName} is not in the world`);
  const tls = entryFor(world, domainName).tls;
  const soft = localOf(address).toLowerCase().startsWith('soft');
  const reasons: string[] = [];
  for (const hi of domain.mx) {
    const host = world.hosts[hi];
    if (!host) throw new Error(`${domainName}: MX host index ${hi} is not in the world`);
    const at = `${host.name} [${host.address}]`;
    switch (host.fault) {
      case 'refuse':
        reasons.push(`${at}: connection refused`);
        continue;
      case 'never-greet':
        reasons.push(`${at}: no greeting (timed out)`);
        continue;
      case 'no-starttls':
        if (requiresTls(tls)) {
          reasons.push(`${at}: STARTTLS not offered, TLS ${tls}`);
          continue;
        }
        return { kind: 'delivered' };
      case 'tls-fail':
        if (requiresTls(tls)) {
          reasons.push(`${at}: TLS handshake failed after 220, TLS ${tls}`);
          continue;
        }
        return { kind: 'delivered' };
      case 'rcpt-4xx':
        if (soft) {
          reasons.push(`${at}: 451 4.3.0 to RCPT`);
          return { kind: 'deferred', why: reasons.join('; ') };
        }
        return { kind: 'delivered' };
      case 'none':
        return { kind: 'delivered' };
    }
  }
  return { kind: 'deferred', why: reasons.length > 0 ? reasons.join('; ') : `${domainName}: no MX host` };
}

// ---- the destination table as an import file ------------------------------------------------

const TLS_WORD: Record<TlsSetting, string> = {
  no: 'no',
  preferred: 'preferred',
  required: 'required',
  'preferred-verify': 'preferred_verify',
  'required-verify': 'required_verify',
};

function entryLines(e: TableEntry): string[] {
  const lines = [
    `max_host_concurrency = ${e.concurrency}`,
    `max_messages_per_connection = ${e.messagesPerConnection}`,
  ];
  if (e.window) lines.push(`recipient_limit = ${e.window.recipients}`, `recipient_minutes = ${e.window.minutes}`);
  lines.push('limit_type = host', 'limit_apply = system', `tls = ${TLS_WORD[e.tls]}`);
  return lines;
}

/** The SPEC §11 file for the world's table: [DEFAULT] with every required key, one section per entry. */
export function tableImportFile(world: World): string {
  const d = world.defaults;
  const out = [
    `# Postern destination controls for the bench's internet world (seed ${world.seed}):`,
    `# ${world.table.length} entries; import with \`postern destconfig import FILE\`.`,
    '[DEFAULT]',
    // The hosts have IPv4 addresses only.
    'ip_sort_pref = PREFER_V4',
    ...entryLines(d),
    'bounce_validation = off',
    // Like Postfix, no recipient-side policy sources (the zone publishes none).
    'dane = off',
    'mta_sts = off',
  ];
  for (const e of world.table) out.push('', `[${e.domain}]`, ...entryLines(e));
  return out.join('\n') + '\n';
}

// ---- DNS -------------------------------------------------------------------------------------

/**
 * The bench DNS server's records: each domain's MX records (preference 10, 20 in order), each
 * host's A record, and an SOA at internet.test so negative answers can be cached. TTL 300 s
 * unless given.
 */
export function zoneOf(world: World, o: { ttl?: number } = {}): Zone {
  const ttl = o.ttl ?? 300;
  const zone: Zone = {
    [INTERNET_DOMAIN]: { SOA: { mname: `ns.${INTERNET_DOMAIN}`, rname: `hostmaster.${INTERNET_DOMAIN}`, serial: 1, minimum: ttl, ttl }, ttl },
  };
  for (const h of world.hosts) zone[h.name.toLowerCase()] = { A: [h.address], ttl };
  for (const d of world.domains) {
    zone[d.name.toLowerCase()] = {
      MX: d.mx.map((hi, i) => ({ preference: 10 * (i + 1), exchange: world.hosts[hi]!.name.toLowerCase() })),
      ttl,
    };
  }
  return zone;
}

// ---- summary ---------------------------------------------------------------------------------

/** The share (0–1) of all recipients that go to the `n` busiest domains. */
export function topDomainsShare(world: Pick<World, 'messages'>, n = 20): number {
  const volume = [...recipientsByDomain(world).values()].sort((a, b) => b - a);
  const total = volume.reduce((s, v) => s + v, 0);
  if (total === 0) return 0;
  return volume.slice(0, n).reduce((s, v) => s + v, 0) / total;
}

const pct = (part: number, whole: number): string => (whole === 0 ? '0.0 %' : `${((100 * part) / whole).toFixed(1)} %`);

/** A few lines for the bench log. */
export function summary(world: World): string[] {
  const byFault = new Map<HostFault, number>();
  for (const h of world.hosts) byFault.set(h.fault, (byFault.get(h.fault) ?? 0) + 1);
  const far = world.hosts.filter((h) => h.delayMs !== NEAR_DELAY_MS).length;
  const twoMx = world.domains.filter((d) => d.mx.length > 1).length;
  let recipients = 0;
  let deliverable = 0;
  let bytes = 0;
  let recipientBytes = 0;
  for (const m of world.messages) {
    bytes += m.size;
    recipientBytes += m.size * m.to.length;
    for (const a of m.to) {
      recipients++;
      if (expectedFate(world, a).kind === 'delivered') deliverable++;
    }
  }
  const faults = (['none', 'refuse', 'never-greet', 'rcpt-4xx', 'no-starttls', 'tls-fail'] as HostFault[])
    .map((f) => `${f} ${byFault.get(f) ?? 0}`)
    .join(', ');
  const tlsMix = TLS_SHARES.map(([t]) => `${t} ${world.table.filter((e) => e.tls === t).length}`).join(', ');
  const windowed = world.table.filter((e) => e.window).length;
  const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
  return [
    `internet world, seed ${world.seed}: ${world.hosts.length} hosts (${far} far), ${world.domains.length} domains (${twoMx} with 2 MX)`,
    `hosts by fault: ${faults}`,
    `${world.messages.length} messages, ${recipients} recipients, ${deliverable} deliverable (${pct(deliverable, recipients)}), ${recipients - deliverable} to stay deferred`,
    `${mb(bytes)} of messages, ${mb(recipientBytes)} counted per recipient; top 20 domains take ${pct(topDomainsShare(world, 20), 1)} of recipients`,
    `table: ${world.table.length} entries (${tlsMix}), ${windowed} with a recipient window; default tls ${world.defaults.tls}`,
  ];
}
