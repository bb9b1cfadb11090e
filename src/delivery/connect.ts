/**
 * Opening a delivery connection for one destination under its policy: routing (SMTP route, MX,
 * implicit MX, Null MX), addresses by IP preference, the greeting and EHLO, and the TLS step of
 * the six settings with verification. Returns a connection ready for MAIL FROM, or a typed
 * failure that says whether the recipients bounce (hard) or wait (soft), and why.
 *
 * "Not delivered" under a TLS setting means: QUIT (or drop, after 220), try the next MX host;
 * if no host is left, a soft failure with a 4.7.x status and the TLS reason.
 *
 * Before a host is tried, its TLS policy is decided once (tls/sources.ts): the table's setting,
 * DANE (TLSA records under DNSSEC, looked up only when the MX records and the host's addresses
 * were authenticated) and MTA-STS; a host the policy rules out is not connected to.
 */
import net from 'node:net';
import type tls from 'node:tls';
import type { DeliveryDns } from '../dns/client.js';
import { isUsable, verifyDane } from '../tls/dane.js';
import type { ResultType, TlsSession } from '../observe/tlsrpt.js';
import { presentedFrom, validForAny } from '../tls/identity.js';
import { planHost, requireTlsPlan, stsMxMatches, type DaneMode, type HostPlan, type StsFinding, type TlsaFinding } from '../tls/sources.js';
import { isNullMx, orderAddresses, orderMx, type TargetHost } from '../dns/select.js';
import type { EventSink } from '../observe/maillog.js';
import { SmtpFailureError, SmtpSession, type SmtpTimeouts } from '../smtp/client.js';
import { replyText } from '../smtp/reply.js';
import { decide, identityAlgorithm, shouldStartTls, type TlsObservation } from '../tls/policy.js';
import { describeChainError, verifyCertificate, type VerificationResult } from '../tls/verify.js';
import type { BrokenTlsMemory } from './broken-tls.js';
import { sourceAddressFor } from './source-address.js';
import type { StsFailureCategory } from '../mtasts/fetch.js';
import type { DeliveryPolicy } from './policy.js';

/** Each step of a connection, for `tlsverify` (delivery passes no tracer). */
export type TraceEvent =
  | { step: 'hosts'; hosts: TargetHost[] }
  | { step: 'addresses'; host: string; addresses: string[] }
  | { step: 'connected'; host: string; address: string; port: number; greeting: string }
  | { step: 'starttls'; offered: boolean }
  | { step: 'starttls-reply'; reply: string }
  | { step: 'tls'; protocol: string; cipher: string; subject: string; issuer: string; validFrom: string; validTo: string }
  | { step: 'verification'; result: VerificationResult }
  | { step: 'policy'; host: string; tlsa: TlsaFinding; dane: DaneMode; plan: HostPlan }
  /** A certificate judged by TLSA records (DANE) or by an MTA-STS policy, instead of or before the table's checks. */
  | { step: 'source-verification'; source: 'dane' | 'mta-sts'; ok: boolean; text: string };

export interface ConnectDeps {
  dns: DeliveryDns;
  /** The recipient domain's MTA-STS policy in effect (null or absent: none). */
  sts?: StsFinding;
  /** Why the domain has no MTA-STS policy although it publishes one: its sessions are reported so. */
  stsFailure?: StsFailureCategory;
  /**
   * RFC 8689 REQUIRETLS: only a host found securely, over verified TLS, offering REQUIRETLS after
   * STARTTLS; when every host fails that, the failure is hard (5.7.30) and the message returns.
   */
  requireTls?: boolean;
  /** Told of each TLS session attempt and its result, for TLS reporting (RFC 8460). */
  tlsrpt?: (s: TlsSession) => void;
  log: EventSink;
  trace?: (t: TraceEvent) => void;
  hostname: string;
  smtpPort: number;
  timeouts: SmtpTimeouts;
  broken: BrokenTlsMemory;
  secureContext: tls.SecureContext;
  nextDcid: () => number;
  now: () => number;
  random?: () => number;
  /** Local address to bind (a virtual gateway's). */
  localAddress?: string;
  /**
   * Connection slots per MX IP address ("each mail exchanger IP address" limits): an address
   * whose slot cannot be taken is skipped; the slot of a failed attempt is given back, that of
   * a returned connection is the caller's to give back.
   */
  addressSlot?: { take(address: string): boolean | Promise<boolean>; give(address: string): void };
}

export type TlsState = 'none' | 'encrypted' | 'encrypted-unverified';

export interface Connection {
  session: SmtpSession;
  dcid: number;
  host: TargetHost;
  address: string;
  tls: TlsState;
}

export interface ConnectFailure {
  ok: false;
  /** Hard failures bounce at once (no such domain, Null MX); soft ones wait for a retry. */
  hard: boolean;
  enhanced: string;
  reason: string;
  /** Nothing was tried: every address is at its per-MX-IP connection limit. */
  busy?: boolean;
}

export type ConnectOutcome = { ok: true; conn: Connection } | ConnectFailure;

/** `againInClear`: the handshake failed after 220 and the host is now remembered as broken: a new connection to it goes in clear text (Preferred). */
type HostFailure = { enhanced: string; reason: string; tls: boolean; againInClear?: boolean };

/**
 * The hosts to try, in order. `secure`: the way to them was authenticated by DNSSEC (the MX
 * records, or the domain's absence of MX records); a route is the administrator's, so only its
 * hosts' addresses decide.
 */
export async function targetHosts(policy: DeliveryPolicy, deps: Pick<ConnectDeps, 'dns' | 'smtpPort' | 'random'>): Promise<{ ok: true; hosts: TargetHost[]; secure: boolean } | ConnectFailure> {
  if (policy.route && policy.route.length > 0) {
    return {
      ok: true,
      hosts: policy.route.map((r, i) => ({ name: r.host, port: r.port ?? deps.smtpPort, preference: i, source: 'route' as const })),
      secure: true,
    };
  }
  let mx;
  try {
    mx = await deps.dns.mx(policy.domain);
  } catch (e) {
    return { ok: false, hard: false, enhanced: '4.4.3', reason: `MX lookup for ${policy.domain} failed: ${(e as Error).message}` };
  }
  switch (mx.kind) {
    case 'nxdomain':
      return { ok: false, hard: true, enhanced: '5.1.2', reason: `domain ${policy.domain} does not exist (NXDOMAIN)` };
    case 'temporary':
      return { ok: false, hard: false, enhanced: '4.4.3', reason: mx.reason };
    case 'no-mx':
      return { ok: true, hosts: [{ name: policy.domain, port: deps.smtpPort, preference: 0, source: 'implicit-mx' }], secure: mx.authenticated };
    case 'mx': {
      if (isNullMx(mx.records)) {
        return { ok: false, hard: true, enhanced: '5.1.10', reason: `domain ${policy.domain} accepts no mail (Null MX, RFC 7505)` };
      }
      const usable = mx.records.filter((r) => r.exchange !== '' && r.exchange !== '.');
      return { ok: true, hosts: orderMx(usable, deps.smtpPort, deps.random), secure: mx.authenticated };
    }
  }
}

export async function connect(policy: DeliveryPolicy, deps: ConnectDeps): Promise<ConnectOutcome> {
  const routing = await targetHosts(policy, deps);
  if (!routing.ok) return routing;
  deps.trace?.({ step: 'hosts', hosts: routing.hosts });
  const failures: HostFailure[] = [];
  let skippedBusy = 0;
  for (const host of routing.hosts) {
    const addrs = await hostAddresses(host, policy, deps);
    if (!addrs.ok) {
      failures.push({ enhanced: addrs.enhanced, reason: addrs.reason, tls: false });
      continue;
    }
    deps.trace?.({ step: 'addresses', host: host.name, addresses: addrs.addresses });
    const tlsa = await tlsaFinding(host, routing.secure && addrs.authenticated, policy, deps);
    const ordinary = planHost(policy.entry.settings, host, tlsa, deps.sts ?? null);
    const plan = deps.requireTls ? requireTlsPlan(ordinary, host, routing.secure, deps.sts ?? null) : ordinary;
    deps.trace?.({ step: 'policy', host: host.name, tlsa, dane: policy.entry.settings.dane, plan });
    const policyOf = sessionPolicy(policy.domain, plan, tlsa, deps.sts ?? null);
    // A policy that could not be fetched makes each session a failure of that kind (RFC 8460 §4.3.2.2).
    const failedSts = !deps.sts && deps.stsFailure && plan.governedBy === 'table';
    const report: SessionReport = (result, address, sendingIp) =>
      deps.tlsrpt?.({ ...(failedSts ? { ...policyOf, policyType: 'sts' as const } : policyOf), result: failedSts ? deps.stsFailure! : result, sendingIp, receivingMx: host.name, receivingIp: address });
    if (!plan.use) {
      const receiving = addrs.addresses[0] ?? '';
      if (deps.tlsrpt) report(plan.failure, receiving, deps.localAddress ?? (await sourceAddressFor(receiving)));
      deps.log.write({ event: 'tls-policy', domain: policy.domain, host: host.name, detail: `${plan.reason}` });
      failures.push({ enhanced: plan.enhanced, reason: `${host.name}: ${plan.reason}`, tls: true });
      continue;
    }
    if (plan.governedBy !== 'table') deps.log.write({ event: 'tls-policy', domain: policy.domain, host: host.name, detail: plan.why });
    // MTA-STS testing: what enforce would refuse is said, and delivery goes on as the table says.
    if (plan.stsTesting && deps.sts && !deps.sts.mx.some((p) => stsMxMatches(p, host.name))) {
      deps.log.write({ event: 'tls-policy', domain: policy.domain, host: host.name, detail: `MTA-STS testing: mx ${host.name} not in policy (${deps.sts.mx.join(', ')}); delivering as the table says` });
    }
    for (const address of addrs.addresses) {
      if (deps.addressSlot && !(await deps.addressSlot.take(address))) {
        skippedBusy++;
        continue;
      }
      let r = await tryAddress(host, address, policy, plan, report, deps);
      // A broken TLS stack just remembered: the next attempt (a new connection, now) goes in
      // clear text, as SPEC §2 allows, rather than waiting for the retry.
      if (!('session' in r) && r.againInClear) r = await tryAddress(host, address, policy, plan, report, deps);
      if ('session' in r) return { ok: true, conn: r };
      deps.addressSlot?.give(address);
      failures.push(r);
      // A TLS refusal or a server that spoke (but refused us) ends this host: go to the next MX.
      if (r.tls || r.enhanced !== '4.4.1') break;
    }
  }
  if (failures.length === 0 && skippedBusy > 0) {
    return { ok: false, hard: false, busy: true, enhanced: '4.4.5', reason: 'every mail exchanger address is at its connection limit' };
  }
  const tlsFailure = failures.find((f) => f.tls);
  const chosen = tlsFailure ?? failures[failures.length - 1];
  if (!chosen) return { ok: false, hard: false, enhanced: '4.4.4', reason: `no mail exchanger to try for ${policy.domain}` };
  const reason = failures.length > 1 ? `${chosen.reason} (and ${failures.length - 1} more failed attempts)` : chosen.reason;
  // REQUIRETLS: every host was tried and none can take the message as asked (a host that could
  // not be reached may later be able to: that waits).
  if (deps.requireTls && failures.every((f) => f.tls)) {
    return { ok: false, hard: true, enhanced: '5.7.30', reason: `REQUIRETLS support required: no mail exchanger of ${policy.domain} takes this message over verified TLS with REQUIRETLS: ${reason}` };
  }
  return { ok: false, hard: false, enhanced: chosen.enhanced, reason };
}

export async function hostAddresses(
  host: TargetHost,
  policy: DeliveryPolicy,
  deps: Pick<ConnectDeps, 'dns'>,
): Promise<{ ok: true; addresses: string[]; authenticated: boolean } | { ok: false; enhanced: string; reason: string }> {
  const pref = policy.entry.settings.ipPreference;
  const want6 = pref !== 'ipv4-required';
  const want4 = pref !== 'ipv6-required';
  const lookup = async (family: 4 | 6) => {
    try {
      return await deps.dns.addresses(host.name, family);
    } catch (e) {
      return { kind: 'temporary' as const, reason: `address lookup (IPv${family}) for ${host.name} failed: ${(e as Error).message}` };
    }
  };
  const [v6, v4] = await Promise.all([want6 ? lookup(6) : Promise.resolve(null), want4 ? lookup(4) : Promise.resolve(null)]);
  const choice = orderAddresses(v6?.kind === 'ok' ? v6.addresses : [], v4?.kind === 'ok' ? v4.addresses : [], pref);
  // Secure only when every look-up made was authenticated (an unsigned answer could hide or add addresses).
  const asked = [v6, v4].filter((x) => x !== null);
  const authenticated = asked.every((x) => x.kind !== 'temporary' && x.authenticated);
  if (choice.ok && choice.addresses.length > 0) return { ok: true, addresses: choice.addresses.map((a) => a.address), authenticated };
  const temp = [v6, v4].find((x) => x?.kind === 'temporary');
  if (temp && temp.kind === 'temporary') return { ok: false, enhanced: '4.4.3', reason: temp.reason };
  return { ok: false, enhanced: '4.4.4', reason: choice.ok ? `host ${host.name} has no address` : `${host.name}: ${choice.reason}` };
}

/** What DNS says of the host's TLSA records, looked up only where DANE can apply. */
export async function tlsaFinding(host: TargetHost, secure: boolean, policy: DeliveryPolicy, deps: Pick<ConnectDeps, 'dns'>): Promise<TlsaFinding> {
  if (policy.entry.settings.dane === 'off' || !secure || net.isIP(host.name)) return { kind: 'not-secure' };
  let r;
  try {
    r = await deps.dns.tlsa(`_${host.port}._tcp.${host.name}`);
  } catch (e) {
    return { kind: 'failed', reason: (e as Error).message };
  }
  switch (r.kind) {
    case 'temporary':
      return { kind: 'failed', reason: r.reason };
    case 'nodata':
    case 'nxdomain':
      return r.authenticated ? { kind: 'none' } : { kind: 'not-secure' };
    case 'answer': {
      if (!r.authenticated) return { kind: 'not-secure' };
      const usable = r.records.filter(isUsable);
      return { kind: 'records', usable, unusable: r.records.length - usable.length };
    }
  }
}

/** The policy a session is reported under (RFC 8460 §4.3): DANE's TLSA records, MTA-STS's policy, or none. */
function sessionPolicy(domain: string, plan: HostPlan, tlsa: TlsaFinding, sts: StsFinding): Pick<TlsSession, 'policyDomain' | 'policyType' | 'policyStrings' | 'mxHosts'> {
  if (plan.governedBy === 'dane') {
    return { policyDomain: domain, policyType: 'tlsa', policyStrings: tlsa.kind === 'records' ? tlsa.usable.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${Buffer.from(r.data).toString('hex')}`) : [], mxHosts: [] };
  }
  if (sts && sts.mode !== 'none') {
    const lines = ['version: STSv1', `mode: ${sts.mode}`, ...sts.mx.map((m) => `mx: ${m}`), ...(sts.maxAge === undefined ? [] : [`max_age: ${sts.maxAge}`])];
    return { policyDomain: domain, policyType: 'sts', policyStrings: lines, mxHosts: [...sts.mx] };
  }
  return { policyDomain: domain, policyType: 'no-policy-found', policyStrings: [], mxHosts: [] };
}

/** Reports one session's result (receiving address, sending address). */
type SessionReport = (result: 'success' | ResultType, address: string, sendingIp: string) => void;

/** The RFC 8460 result type of a certificate the chain check refused. */
function chainResult(code: string | undefined): ResultType {
  return code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' ? 'certificate-expired' : 'certificate-not-trusted';
}

async function tryAddress(host: TargetHost, address: string, policy: DeliveryPolicy, plan: Extract<HostPlan, { use: true }>, report: SessionReport, deps: ConnectDeps): Promise<Connection | HostFailure> {
  const domain = policy.domain;
  let session: SmtpSession;
  try {
    session = await SmtpSession.open({ address, port: host.port, timeouts: deps.timeouts, localAddress: deps.localAddress });
  } catch (e) {
    const reason = e instanceof SmtpFailureError ? e.message : String(e);
    deps.log.write({ event: 'connection-failed', domain, host: host.name, address, port: host.port, reason, tls: policy.entry.settings.tls });
    return { enhanced: '4.4.1', reason: `${host.name} [${address}]: ${reason}`, tls: false };
  }
  const dcid = deps.nextDcid();
  deps.log.write({ event: 'connection', dcid, interface: session.localAddress ?? '', address, port: host.port, host: host.name, domain, tls: policy.entry.settings.tls });
  const where = `${host.name} [${address}]`;
  deps.trace?.({ step: 'connected', host: host.name, address, port: host.port, greeting: replyText(session.greeting) });
  try {
    if (session.greeting.code !== 220) {
      await session.quit();
      return { enhanced: '4.4.2', reason: `${where} greeted with ${replyText(session.greeting)}`, tls: false };
    }
    const ehlo = await session.ehlo(deps.hostname);
    if (ehlo.code !== 250) {
      await session.quit();
      return { enhanced: '4.4.2', reason: `${where} refused EHLO and HELO: ${replyText(ehlo)}`, tls: false };
    }
    const state = await negotiateTls(session, dcid, host, address, policy, plan, (result) => report(result, address, session.localAddress ?? ''), deps);
    if (typeof state !== 'string') return state;
    if (state !== 'none') {
      const again = await session.ehlo(deps.hostname);
      if (again.code !== 250) {
        await session.quit();
        return { enhanced: '4.4.2', reason: `${where} refused EHLO after TLS: ${replyText(again)}`, tls: false };
      }
    }
    if (deps.requireTls && !session.extensions.has('REQUIRETLS')) {
      const reason = `${where} does not offer REQUIRETLS after STARTTLS`;
      deps.log.write({ event: 'tls-failed', dcid, domain: policy.domain, reason: `REQUIRETLS: ${reason}`, outcome: 'refused' });
      await session.quit();
      deps.log.write({ event: 'connection-closed', dcid });
      return { enhanced: '5.7.30', reason, tls: true };
    }
    return { session, dcid, host, address, tls: state };
  } catch (e) {
    session.destroy();
    deps.log.write({ event: 'connection-closed', dcid });
    const reason = e instanceof SmtpFailureError ? e.message : String(e);
    return { enhanced: '4.4.2', reason: `${where}: ${reason}`, tls: false };
  }
}

/** The STARTTLS step. Returns the TLS state to go on with, or a failure that ends this host. */
async function negotiateTls(
  session: SmtpSession,
  dcid: number,
  host: TargetHost,
  address: string,
  policy: DeliveryPolicy,
  plan: Extract<HostPlan, { use: true }>,
  report: (result: 'success' | ResultType) => void,
  deps: ConnectDeps,
): Promise<TlsState | HostFailure> {
  // The table's setting, or what DANE or MTA-STS raised it to for this host.
  const mode = plan.mode;
  const domain = policy.domain;
  if (mode === 'no') return 'none';
  const now = deps.now();
  if (!shouldStartTls(mode, deps.broken.isBroken(address, host.port, now))) {
    deps.log.write({
      event: 'tls-skipped',
      dcid,
      domain,
      reason: `the TLS handshake with ${host.name} [${address}] failed recently; delivering in clear text (${mode})`,
    });
    return 'none';
  }
  const fail = async (seen: TlsObservation, reason: string): Promise<TlsState | HostFailure> => {
    report(seen === 'not-offered' || seen === 'rejected' ? 'starttls-not-supported' : 'validation-failure');
    const action = decide(mode, seen);
    if (action === 'clear') {
      deps.log.write({ event: 'tls-failed', dcid, domain, reason, outcome: 'clear-text' });
      return 'none';
    }
    if (action === 'drop') {
      deps.log.write({ event: 'tls-failed', dcid, domain, reason, outcome: 'dropped' });
      session.destroy();
    } else {
      deps.log.write({ event: 'tls-failed', dcid, domain, reason, outcome: 'refused' });
      await session.quit();
    }
    deps.log.write({ event: 'connection-closed', dcid });
    const enhanced = seen === 'not-offered' || seen === 'rejected' ? '4.7.4' : '4.7.5';
    return { enhanced, reason: `TLS ${mode}: ${host.name} [${address}]: ${reason}`, tls: true };
  };

  deps.trace?.({ step: 'starttls', offered: session.extensions.has('STARTTLS') });
  if (!session.extensions.has('STARTTLS')) return fail('not-offered', 'STARTTLS not offered by the server');
  const servername = net.isIP(host.name) ? undefined : host.name;
  const r = await session.starttls({ servername, secureContext: deps.secureContext });
  if (r.kind === 'rejected') deps.trace?.({ step: 'starttls-reply', reply: replyText(r.reply) });
  switch (r.kind) {
    case 'rejected':
      return fail('rejected', `STARTTLS answered ${replyText(r.reply)}`);
    case 'injected':
      return fail('handshake-failed', `${r.bytes} bytes received after the 220 to STARTTLS, before the handshake (response injection)`);
    case 'failed': {
      deps.broken.remember(address, host.port, now, policy.globals.brokenTlsMemoryHours);
      const f = await fail('handshake-failed', `handshake failed after 220: ${r.detail}`);
      return typeof f !== 'string' && deps.broken.isBroken(address, host.port, now) && shouldStartTls(mode, true) === false ? { ...f, againInClear: true } : f;
    }
    case 'ok':
      break;
  }
  // The certificate is read from the TLS stack only when something looks at it: name checks
  // (Verify settings, MTA-STS) read the leaf's DER, DANE and tlsverify's trace the whole chain as
  // Node's objects (the costly form); Preferred and Required sessions pay for neither.
  if (deps.trace) {
    const c = r.certificate;
    deps.trace({
      step: 'tls',
      protocol: r.protocol,
      cipher: r.cipher,
      subject: c?.subject ? Object.entries(c.subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '',
      issuer: c?.issuer ? Object.entries(c.issuer).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '',
      validFrom: c?.valid_from ?? '',
      validTo: c?.valid_to ?? '',
    });
  }
  const refuse = async (reason: string, result: ResultType): Promise<HostFailure> => {
    report(result);
    deps.log.write({ event: 'verify-failed', dcid, domain, reason });
    await session.quit();
    deps.log.write({ event: 'tls-failed', dcid, domain, reason: `certificate not verified: ${reason}`, outcome: 'refused' });
    deps.log.write({ event: 'connection-closed', dcid });
    return { enhanced: '4.7.5', reason: `TLS ${mode}: ${host.name} [${address}]: certificate not verified: ${reason}`, tls: true };
  };
  if (plan.dane) {
    // A matching TLSA record is a verified peer for every Verify setting; no match, no delivery.
    const d = verifyDane(chainOf(r.certificate), plan.dane, { names: [host.name, domain], now });
    deps.trace?.({ step: 'source-verification', source: 'dane', ok: d.ok, text: d.ok ? `verified by TLSA ${d.record}` : `not verified: ${d.reason}` });
    if (!d.ok) return refuse(`DANE: ${d.reason}`, 'tlsa-invalid');
    report('success');
    deps.log.write({ event: 'tls-success', dcid, domain, protocol: r.protocol, cipher: r.cipher, verified: 'yes', by: `DANE TLSA ${d.record} verified` });
    return 'encrypted';
  }
  if (plan.pkixName) {
    // MTA-STS enforce: a trusted chain and a certificate valid for the MX host name, besides the entry's own checks.
    const names = validForAny(presentedFrom(r.leaf), [plan.pkixName]);
    const why = !r.chainTrusted ? describeChainError(r.chainError) : names.ok ? null : `the certificate is not valid for ${plan.pkixName} (it names ${names.presented.join(', ') || 'nothing'})`;
    deps.trace?.({ step: 'source-verification', source: 'mta-sts', ok: why === null, text: why ?? `a trusted certificate valid for ${plan.pkixName}` });
    if (why !== null) return refuse(`${plan.pkixBy ?? 'MTA-STS enforce'}: ${why}`, !r.chainTrusted ? chainResult(r.chainError) : 'certificate-host-mismatch');
  }
  const algorithm = identityAlgorithm(mode);
  if (algorithm === null) {
    report('success');
    if (plan.pkixName) {
      deps.log.write({ event: 'tls-success', dcid, domain, protocol: r.protocol, cipher: r.cipher, verified: 'yes', by: `${plan.pkixBy ?? 'MTA-STS enforce'}: certificate valid for ${plan.pkixName}` });
      return 'encrypted';
    }
    deps.log.write({ event: 'tls-success', dcid, domain, protocol: r.protocol, cipher: r.cipher, verified: 'not-attempted' });
    return 'encrypted';
  }
  const input = {
    algorithm,
    chainTrusted: r.chainTrusted,
    chainError: r.chainError,
    certificate: r.leaf,
    recipientDomain: domain,
    mxHost: host.source === 'route' ? undefined : host.name,
    routeHost: host.source === 'route' ? host.name : undefined,
  };
  let v = verifyCertificate(input);
  if (!v.ok && v.stage === 'identity' && algorithm === 'verify') {
    // The Verify algorithm also accepts the PTR name of the address connected to.
    const ptrNames = await deps.dns.ptr(address);
    if (ptrNames.length > 0) v = verifyCertificate({ ...input, ptrNames });
  }
  deps.trace?.({ step: 'verification', result: v });
  report(v.ok ? 'success' : v.stage === 'chain' ? chainResult(r.chainError) : 'certificate-host-mismatch');
  if (v.ok) {
    deps.log.write({ event: 'tls-success', dcid, domain, protocol: r.protocol, cipher: r.cipher, verified: 'yes' });
    return 'encrypted';
  }
  deps.log.write({ event: 'verify-failed', dcid, domain, reason: v.reason });
  const action = decide(mode, 'unverified');
  if (action === 'encrypted-unverified' || action === 'encrypted') {
    deps.log.write({ event: 'tls-success', dcid, domain, protocol: r.protocol, cipher: r.cipher, verified: 'no' });
    return 'encrypted-unverified';
  }
  await session.quit();
  deps.log.write({ event: 'tls-failed', dcid, domain, reason: `certificate not verified: ${v.reason}`, outcome: 'refused' });
  deps.log.write({ event: 'connection-closed', dcid });
  return { enhanced: '4.7.5', reason: `TLS ${mode}: ${host.name} [${address}]: certificate not verified: ${v.reason}`, tls: true };
}

/** The chain the server sent, leaf first, as DER (Node links it through issuerCertificate). */
function chainOf(c: tls.DetailedPeerCertificate | null): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<tls.DetailedPeerCertificate>();
  for (let x = c; x && x.raw && !seen.has(x) && out.length < 16; x = x.issuerCertificate) {
    seen.add(x);
    out.push(x.raw);
  }
  return out;
}
