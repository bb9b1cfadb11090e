/**
 * MTA-STS policy discovery (RFC 8461 §3, §5): which policy applies to a recipient domain now.
 *
 * policyFor(domain), as delivery asks before choosing MX hosts:
 * - the `_mta-sts.<domain>` TXT record is looked up (§3.1);
 * - one valid record whose id equals the id of the cached, unexpired policy → the cached policy;
 * - a valid record and the id differs, or nothing is cached, or it expired → the policy is
 *   fetched (§3.3) and the caller waits for it (bounded by the fetch timeout); a fetch that
 *   succeeds replaces the cached policy; one that fails leaves an unexpired cached policy in
 *   force (§5.1: a policy is not given up because it cannot be refreshed) and is recorded;
 * - no valid record (none, several, malformed) or a failed TXT look-up → the cached policy while
 *   it has not expired (removing the record does not end a policy before its max_age), else none;
 * - after a failed fetch the domain is not fetched again for `retryAfterMs` (kept in the store,
 *   so it holds across restarts); meanwhile the cached policy, if any, and the last error answer;
 * - concurrent calls for one domain share one fetch.
 * A policy of mode `none` is a finding of mode none (it still replaces an older policy).
 *
 * refresh(domain) looks up the record and fetches at once, whatever the cache and the rate
 * limit (for `postern mtasts refresh` and a periodic refresher); show(domain) only reads.
 */
import type tls from 'node:tls';
import { ValidationError } from '../controls/validate.js';
import type { WireDnsClient } from '../dns/wire.js';
import type { StsFinding } from '../tls/sources.js';
import { normaliseDomain } from '../tls/names.js';
import { addressResolver, fetchStsPolicy, StsFetchError, type StsFailure } from './fetch.js';
import { selectStsRecord, type StsTxtSelection } from './policy.js';
import type { CachedPolicy, FetchFailureRecord, MtaStsEntry, MtaStsStore } from './store.js';

export const DEFAULT_RETRY_AFTER_MS = 5 * 60_000;

/** What the TXT records of `_mta-sts.<domain>` said at one look-up. */
export type StsTxtLookup = StsTxtSelection | { kind: 'temporary'; reason: string };

export interface StsPolicyResult {
  /** The policy in effect (null: none applies). */
  finding: StsFinding;
  /** Where the finding came from: the cache, a fetch made for this call, or nowhere. */
  source: 'cache' | 'fetched' | 'none';
  /** The fetch that failed on this call, or the last failure while retries are held back. */
  error?: StsFailure;
  /** What DNS said (for logs and explanations). */
  txt: StsTxtLookup;
}

export interface StsShown extends MtaStsEntry {
  policy: (CachedPolicy & { expired: boolean }) | null;
}

export interface StsRefreshResult {
  domain: string;
  txt: StsTxtLookup;
  /** Whether a policy was fetched and stored by this refresh. */
  fetched: boolean;
  error?: StsFailure;
  /** The cache after the refresh. */
  entry: StsShown | null;
}

export interface MtaStsResolverOptions {
  dns: Pick<WireDnsClient, 'txt' | 'addresses'>;
  store: Pick<MtaStsStore, 'get' | 'savePolicy' | 'saveError'>;
  /** The trust store (asked at each fetch, so that a change of authorities takes effect). */
  secureContext: () => tls.SecureContext;
  /** HTTPS port of the policy hosts (default 443; tests use another). */
  port?: number;
  fetchTimeoutMs?: number;
  /** How long after a failed fetch a domain is not fetched again (default 5 minutes). */
  retryAfterMs?: number;
  /** Millisecond clock (default Date.now). */
  now?: () => number;
}

type FetchOutcome = { ok: true; policy: CachedPolicy } | { ok: false; error: FetchFailureRecord };

const failure = (e: StsFailure): StsFailure => ({ category: e.category, reason: e.reason });
const findingOf = (p: CachedPolicy): StsFinding => ({ mode: p.mode, mx: [...p.mx], maxAge: p.maxAge });

export class MtaStsResolver {
  private readonly fetching = new Map<string, Promise<FetchOutcome>>();
  private readonly now: () => number;
  private readonly retryAfterMs: number;

  constructor(private readonly o: MtaStsResolverOptions) {
    this.now = o.now ?? Date.now;
    this.retryAfterMs = o.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
  }

  async policyFor(domainArg: string): Promise<StsPolicyResult> {
    const domain = normaliseDomain(domainArg);
    // An address literal or a malformed name cannot publish a policy.
    if (domain === null) return { finding: null, source: 'none', txt: { kind: 'none' } };
    const txt = await this.lookupTxt(domain);
    const now = this.now();
    const entry = this.o.store.get(domain);
    const cached = entry?.policy && entry.policy.expiresAt > now ? entry.policy : null;
    const fromCache = (error?: StsFailure): StsPolicyResult =>
      cached ? { finding: findingOf(cached), source: 'cache', txt, ...(error ? { error } : {}) } : { finding: null, source: 'none', txt, ...(error ? { error } : {}) };
    if (txt.kind !== 'record') return fromCache();
    if (cached && cached.id === txt.id) return fromCache();
    const last = entry?.lastError;
    if (last && now >= last.at && now - last.at < this.retryAfterMs) return fromCache(failure(last));
    const r = await this.fetchShared(domain, txt.id);
    if (r.ok) return { finding: findingOf(r.policy), source: 'fetched', txt };
    return fromCache(failure(r.error));
  }

  async refresh(domainArg: string): Promise<StsRefreshResult> {
    const domain = checkedDomain(domainArg);
    const txt = await this.lookupTxt(domain);
    if (txt.kind !== 'record') return { domain, txt, fetched: false, entry: this.show(domain) };
    const r = await this.fetchShared(domain, txt.id);
    return { domain, txt, fetched: r.ok, ...(r.ok ? {} : { error: failure(r.error) }), entry: this.show(domain) };
  }

  show(domainArg: string): StsShown | null {
    const domain = checkedDomain(domainArg);
    const entry = this.o.store.get(domain);
    return entry ? shown(entry, this.now()) : null;
  }

  private lookupTxt(domain: string): Promise<StsTxtLookup> {
    return lookupStsTxt(this.o.dns, domain);
  }

  private fetchShared(domain: string, id: string): Promise<FetchOutcome> {
    let p = this.fetching.get(domain);
    if (!p) {
      p = this.fetch(domain, id).finally(() => this.fetching.delete(domain));
      this.fetching.set(domain, p);
    }
    return p;
  }

  private async fetch(domain: string, id: string): Promise<FetchOutcome> {
    let fetched;
    try {
      fetched = await fetchStsPolicy(domain, {
        secureContext: this.o.secureContext(),
        resolve: addressResolver(this.o.dns),
        port: this.o.port,
        timeoutMs: this.o.fetchTimeoutMs,
      });
    } catch (e) {
      const f: StsFailure = e instanceof StsFetchError ? e.toFailure() : { category: 'sts-policy-fetch-error', reason: (e as Error).message };
      const error: FetchFailureRecord = { ...f, at: this.now() };
      this.o.store.saveError(domain, error);
      return { ok: false, error };
    }
    const { policy, text } = fetched;
    const fetchedAt = this.now();
    const cached: CachedPolicy = { id, mode: policy.mode, mx: policy.mx, maxAge: policy.maxAge, fetchedAt, expiresAt: fetchedAt + policy.maxAge * 1000, text };
    this.o.store.savePolicy(domain, cached);
    return { ok: true, policy: cached };
  }
}

/** Looks up and reads the `_mta-sts.<domain>` TXT records (§3.1); `domain` in A-label form. */
export async function lookupStsTxt(dns: Pick<WireDnsClient, 'txt'>, domain: string): Promise<StsTxtLookup> {
  let r;
  try {
    r = await dns.txt(`_mta-sts.${domain}`);
  } catch (e) {
    // Only a name too long to ask about gets here: it cannot hold a record.
    if (e instanceof ValidationError) return { kind: 'none' };
    throw e;
  }
  switch (r.kind) {
    case 'answer':
      return selectStsRecord(r.records);
    case 'nodata':
    case 'nxdomain':
      return { kind: 'none' };
    case 'temporary':
      return { kind: 'temporary', reason: r.reason };
  }
}

export function checkedDomain(domainArg: string): string {
  const domain = normaliseDomain(domainArg);
  if (domain === null) throw new ValidationError('domain', domainArg, 'a domain name (example.com)');
  return domain;
}

export function shown(entry: MtaStsEntry, now: number): StsShown {
  return { ...entry, policy: entry.policy ? { ...entry.policy, expired: entry.policy.expiresAt <= now } : null };
}
