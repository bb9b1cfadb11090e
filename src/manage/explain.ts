/**
 * `postern destconfig explain DOMAIN` and `GET /api/v1/destinations/{domain}/effective`: what
 * delivery would do for a domain, and why — the entry that matches (exact, `.suffix` or
 * Default), every setting and where it comes from, the bounce profile, the SMTP route or the MX
 * hosts with their addresses in the order delivery tries them, the TLS behaviour with the
 * identity algorithm and its reference identifiers, and any address remembered as having broken
 * TLS. It uses delivery's own functions (resolvePolicy, targetHosts, hostAddresses), so it
 * cannot drift from what delivery does.
 *
 * explain(snapshot, domain, deps) → Explanation (looks up DNS); explanationLines(e) → text. Pure
 * apart from the DNS look-ups.
 */
import type { BounceProfile } from '../bounce/profile.js';
import type { ConfigSnapshot } from '../config/store.js';
import { displayName } from '../controls/names.js';
import { DANE_MODE_LABELS, DEFAULT_ENTRY_NAME, IP_PREFERENCE_LABELS, TLS_MODE_LABELS, type DefaultSettingName, type Settings } from '../controls/types.js';
import { ValidationError } from '../controls/validate.js';
import { routeKeyFor } from '../controls/routes.js';
import { hostAddresses, targetHosts, tlsaFinding } from '../delivery/connect.js';
import { resolvePolicy } from '../delivery/policy.js';
import type { DeliveryDns } from '../dns/client.js';
import { describeFinding, planHost, type PolicySource, type StsFinding } from '../tls/sources.js';
import { identityAlgorithm, isPreferred, isRequired, verifies } from '../tls/policy.js';
import { normaliseDomain } from '../tls/names.js';

export interface ExplainDeps {
  dns: DeliveryDns;
  smtpPort: number;
  /** The recipient domain's MTA-STS policy (fetched as delivery would); absent: not looked at here. */
  sts?: (domain: string) => Promise<{ finding: StsFinding; source: 'cache' | 'fetched' | 'none'; error?: { category: string; reason: string } }>;
  /** Addresses remembered as having broken TLS (queue.db), with the time each is remembered until. */
  broken: { address: string; port: number; until: number }[];
}

export interface ExplainedSetting {
  key: DefaultSettingName;
  label: string;
  value: unknown;
  text: string;
  /** The entry the value comes from: the matched entry or `(Default)`. */
  from: string;
}

export interface ExplainedHost {
  name: string;
  port: number;
  /** MX preference, or the route's position. */
  preference: number;
  source: 'route' | 'mx' | 'implicit-mx';
  /** Hosts of equal MX preference are tried in a random order each time. */
  shuffledWith: string[];
  addresses: { address: string; brokenTlsUntil: string | null }[];
  /** Why this host has no address to try. */
  problem?: string;
  /** The policy that governs TLS to this host (tls/sources.ts), and what DNS said of its TLSA records. */
  tlsPolicy?: { governedBy: PolicySource; used: boolean; text: string; tlsa: string };
}

export interface Explanation {
  domain: string;
  matched: { entry: string; how: 'exact' | 'suffix' | 'default'; why: string };
  settings: ExplainedSetting[];
  profile: BounceProfile;
  route: { key: string; hosts: string[] } | null;
  /** Set when delivery could not find any host: what it would do instead. */
  routingProblem: { enhanced: string; reason: string; bounces: boolean } | null;
  hosts: ExplainedHost[];
  tls: {
    setting: string;
    starttls: string;
    certificate: string;
    identity: { algorithm: 'verify' | 'hosted'; references: string[] } | null;
    trusted: string;
    /** Whether a failed TLS connection raises a `tls` alert, and what decides it. */
    alert: { on: boolean; from: 'entry' | 'global switch'; applies: boolean };
  };
  /** The recipient domain's MTA-STS policy in effect; null when the entry turns MTA-STS off or it was not looked at. */
  mtaSts: { policy: { mode: string; mx: string[] } | null; source: 'cache' | 'fetched' | 'none'; error: string | null } | null;
}

const LABELS: Record<DefaultSettingName, string> = {
  ipPreference: 'IP Address Preference',
  concurrency: 'Maximum Concurrent Connections',
  messagesPerConnection: 'Maximum Messages Per Connection',
  recipientLimit: 'Recipients',
  limitPer: 'Apply limits per',
  enforce: 'Enforce limits',
  tls: 'TLS Support',
  dane: 'DANE',
  mtaSts: 'MTA-STS',
  bounceVerification: 'Bounce Verification Address Tagging',
  bounceProfile: 'Bounce Profile',
};

const count = (n: number): string => n.toLocaleString('en-US');

function settingText(key: DefaultSettingName, s: Settings): string {
  switch (key) {
    case 'ipPreference':
      return IP_PREFERENCE_LABELS[s.ipPreference];
    case 'concurrency':
      return count(s.concurrency);
    case 'messagesPerConnection':
      return count(s.messagesPerConnection);
    case 'recipientLimit':
      return s.recipientLimit === null ? 'No Limit' : `${count(s.recipientLimit.recipients)} per ${count(s.recipientLimit.minutes)} minutes`;
    case 'limitPer':
      return s.limitPer === 'domain' ? 'Entire domain' : 'Each mail exchanger (MX) IP address';
    case 'enforce':
      return s.enforce === 'system' ? 'System Wide' : 'Per Virtual Gateway';
    case 'tls':
      return TLS_MODE_LABELS[s.tls];
    case 'dane':
      return DANE_MODE_LABELS[s.dane];
    case 'mtaSts':
      return s.mtaSts ? 'On' : 'Off';
    case 'bounceVerification':
      return s.bounceVerification ? 'On (with a tagging key: postern bvconfig key list)' : 'Off';
    case 'bounceProfile':
      return s.bounceProfile;
  }
}

export async function explain(snapshot: ConfigSnapshot, input: string, deps: ExplainDeps, now = Date.now()): Promise<Explanation> {
  const domain = normaliseDomain(input.trim());
  if (domain === null || domain === '') throw new ValidationError('domain', input, 'a domain name (example.com)');
  const policy = resolvePolicy(snapshot, domain);
  const entry = snapshot.table.match(domain);
  const matched = !entry
    ? { entry: DEFAULT_ENTRY_NAME, how: 'default' as const, why: `no entry names ${domain} or a domain above it` }
    : entry.name === domain
      ? { entry: entry.name, how: 'exact' as const, why: `the entry ${displayName(entry.name)} names this domain exactly` }
      : { entry: entry.name, how: 'suffix' as const, why: `no exact entry; ${displayName(entry.name)} is the most specific subdomain pattern above it` };
  const s = policy.entry.settings;
  const settings = (Object.keys(LABELS) as DefaultSettingName[]).map((key) => ({
    key,
    label: LABELS[key],
    value: s[key],
    text: settingText(key, s),
    from: policy.entry.inherited.includes(key) ? DEFAULT_ENTRY_NAME : matched.entry,
  }));

  const sts = s.mtaSts && deps.sts ? await deps.sts(domain) : null;
  const routing = await targetHosts(policy, { dns: deps.dns, smtpPort: deps.smtpPort, random: () => 0 });
  const hosts: ExplainedHost[] = [];
  let routingProblem: Explanation['routingProblem'] = null;
  if (!routing.ok) {
    routingProblem = { enhanced: routing.enhanced, reason: routing.reason, bounces: routing.hard };
  } else {
    // Equal MX preferences are shuffled on each delivery: shown here in name order, and said so.
    const ordered = routing.hosts.slice().sort((a, b) => (a.source === 'mx' && b.source === 'mx' ? a.preference - b.preference || a.name.localeCompare(b.name) : 0));
    for (const h of ordered) {
      const shuffledWith = h.source === 'mx' ? routing.hosts.filter((o) => o !== h && o.source === 'mx' && o.preference === h.preference).map((o) => o.name) : [];
      const a = await hostAddresses(h, policy, { dns: deps.dns });
      let tlsPolicy: ExplainedHost['tlsPolicy'];
      if (a.ok) {
        const finding = await tlsaFinding(h, routing.secure && a.authenticated, policy, deps);
        const plan = planHost(s, h, finding, sts?.finding ?? null);
        const tlsa = describeFinding(finding, s.dane);
        tlsPolicy = { governedBy: plan.governedBy, used: plan.use, text: plan.use ? `${plan.why}; connections run as ${TLS_MODE_LABELS[plan.mode]}` : `not used: ${plan.reason}`, tlsa };
      }
      const until = (address: string): string | null => {
        const b = deps.broken.find((x) => x.address === address && x.port === h.port && x.until > now);
        return b ? new Date(b.until).toISOString() : null;
      };
      hosts.push({
        name: h.name,
        port: h.port,
        preference: h.preference,
        source: h.source,
        shuffledWith,
        addresses: a.ok ? a.addresses.map((address) => ({ address, brokenTlsUntil: until(address) })) : [],
        ...(a.ok ? {} : { problem: `${a.enhanced} ${a.reason}` }),
        ...(tlsPolicy ? { tlsPolicy } : {}),
      });
    }
  }

  const mode = s.tls;
  const algorithm = identityAlgorithm(mode);
  const mxNames = hosts.filter((h) => h.source !== 'route').map((h) => h.name);
  const routeNames = hosts.filter((h) => h.source === 'route').map((h) => h.name);
  const references =
    algorithm === 'hosted'
      ? [`${domain} (the recipient domain)`, ...routeNames.map((n) => `${n} (SMTP route host)`), ...mxNames.map((n) => `${n} (MX host)`)]
      : algorithm === 'verify'
        ? [`${domain} (the recipient domain: dNSName or CN)`, ...[...routeNames, ...mxNames].map((n) => `${n} (host connected to: CN only)`), 'the PTR names of the address connected to (CN only, looked up when nothing else matched)']
        : [];
  const starttls =
    mode === 'no'
      ? 'never: mail goes in clear text'
      : isRequired(mode)
        ? 'required: a server without STARTTLS, or a failed handshake, defers the mail (4.7.4 / 4.7.5); never clear text'
        : `tried; if the server does not offer it or refuses it, mail goes in clear text${isPreferred(mode) ? '; a handshake that fails after 220 is retried in clear text and the address remembered for ' + snapshot.globals.brokenTlsMemoryHours + ' hours' : ''}`;
  const certificate = !verifies(mode)
    ? 'not verified (any certificate is accepted)'
    : isRequired(mode)
      ? 'verified: an untrusted chain or a name mismatch defers the mail'
      : 'verified: a failure is logged and the mail goes on encrypted (unverified)';
  const trusted = verifies(mode) ? `${snapshot.globals.useSystemAuthorities ? "the system's root store" : 'not the system root store'}${snapshot.authorities.length > 0 ? ` and ${snapshot.authorities.length} custom ${snapshot.authorities.length === 1 ? 'authority' : 'authorities'}` : ''}` : '-';

  const alert = {
    on: policy.entry.tlsAlert ?? snapshot.globals.requiredTlsAlert,
    from: policy.entry.tlsAlert === undefined ? ('global switch' as const) : ('entry' as const),
    applies: isRequired(mode),
  };

  return {
    domain,
    matched,
    settings,
    profile: policy.profile,
    route: policy.route ? { key: routeKeyFor(snapshot.routes, domain), hosts: policy.route.map((r) => (r.port ? `${r.host}:${r.port}` : r.host)) } : null,
    routingProblem,
    hosts,
    tls: { setting: TLS_MODE_LABELS[mode], starttls, certificate, identity: algorithm ? { algorithm, references } : null, trusted, alert },
    mtaSts: sts === null ? null : { policy: sts.finding, source: sts.source, error: sts.error ? `${sts.error.category}: ${sts.error.reason}` : null },
  };
}

export function explanationLines(e: Explanation): string[] {
  const lines = [`Destination: ${displayName(e.domain)}`, `Matched entry: ${e.matched.entry === DEFAULT_ENTRY_NAME ? DEFAULT_ENTRY_NAME : displayName(e.matched.entry)} (${e.matched.how}: ${e.matched.why})`, '', 'Settings:'];
  const width = Math.max(...e.settings.map((x) => x.label.length));
  for (const x of e.settings) lines.push(`  ${x.label.padEnd(width)}  ${x.text}   [from ${x.from}]`);
  const p = e.profile;
  lines.push(
    '',
    `Bounce profile ${p.name}: ${count(p.maxRetries)} attempts at most, ${count(p.maxQueueSeconds)} s in the queue at most, retries after ${count(p.initialRetrySeconds)} s doubling to ${count(p.maxRetrySeconds)} s; hard bounces ${p.sendHardBounces ? 'sent' : 'not sent'}; delay warnings ${p.delayWarnings ? `every ${count(p.delayWarningInterval)} s, at most ${p.delayWarningMax}` : 'off'}; DSNs to ${p.alternateAddress ?? 'the sender'}`,
    '',
  );
  if (e.route) lines.push(`SMTP route ${e.route.key}: ${e.route.hosts.join(', ')} (DNS MX records are not used)`);
  else lines.push('No SMTP route: the MX records of the domain are used.');
  if (e.routingProblem) {
    lines.push(`Delivery finds no host: ${e.routingProblem.enhanced} ${e.routingProblem.reason} (${e.routingProblem.bounces ? 'the message bounces' : 'the message is deferred and retried'})`);
  } else {
    lines.push('Hosts, in the order delivery tries them:');
    e.hosts.forEach((h, i) => {
      const what = h.source === 'route' ? 'route host' : h.source === 'implicit-mx' ? 'no MX record: the domain itself (implicit MX)' : `MX preference ${h.preference}`;
      const shuffle = h.shuffledWith.length > 0 ? `; same preference as ${h.shuffledWith.join(', ')}: their order is random each time` : '';
      lines.push(`  ${i + 1}. ${h.name} port ${h.port} (${what}${shuffle})`);
      if (h.problem) lines.push(`       no address to try: ${h.problem}`);
      if (h.tlsPolicy) lines.push(`       TLSA records: ${h.tlsPolicy.tlsa}`, `       TLS policy (${h.tlsPolicy.governedBy === 'table' ? 'the table' : h.tlsPolicy.governedBy === 'dane' ? 'DANE' : 'MTA-STS'}): ${h.tlsPolicy.text}`);
      for (const a of h.addresses) lines.push(`       ${a.address}${a.brokenTlsUntil ? `   broken TLS remembered until ${a.brokenTlsUntil}: Preferred settings send in clear text until then` : ''}`);
    });
  }
  if (e.mtaSts) {
    const m = e.mtaSts;
    const p = m.policy;
    lines.push('', `MTA-STS policy of ${e.domain}: ${p ? `mode ${p.mode}${p.mx.length ? `, mx ${p.mx.join(', ')}` : ''} (${m.source === 'fetched' ? 'fetched now' : 'cached'})` : 'none published'}${m.error ? `; ${m.error}` : ''}`);
  }
  lines.push('', `TLS: ${e.tls.setting}`, `  STARTTLS: ${e.tls.starttls}`, `  Certificate: ${e.tls.certificate}`);
  if (e.tls.identity) {
    lines.push(`  Identity check: ${e.tls.identity.algorithm === 'hosted' ? 'Hosted (dNSNames; the CN only when there is none)' : 'Verify (dNSName or CN)'}; reference identifiers in order:`);
    for (const r of e.tls.identity.references) lines.push(`    - ${r}`);
    lines.push(`  Trusted authorities: ${e.tls.trusted}`);
  }
  const a = e.tls.alert;
  const decided = a.from === 'entry' ? `the entry ${displayName(e.matched.entry)} (--tls-alert)` : 'the global switch (destconfig setup --required-tls-alert)';
  lines.push(
    a.applies
      ? `  Alert when a connection fails its required TLS: ${a.on ? 'On' : 'Off'} [from ${decided}]`
      : `  Alert when a connection fails its required TLS: not applicable (only Required settings raise TLS alerts; ${a.on ? 'On' : 'Off'} from ${decided})`,
  );
  const broken = e.hosts.flatMap((h) => h.addresses.filter((a) => a.brokenTlsUntil));
  if (broken.length === 0 && e.hosts.length > 0) lines.push('  No address of these hosts is remembered as having broken TLS.');
  return lines;
}
