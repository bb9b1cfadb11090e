/**
 * `postern mtasts show DOMAIN`: the MTA-STS policy cached for a recipient domain (mtasts.db of
 * the data directory), and with --dns-server the id the domain publishes now.
 * `postern mtasts refresh DOMAIN`: looks up the TXT record and fetches the policy at once (the
 * trust store of the data directory, as delivery and tlsverify use it), stores it, and prints
 * it or the error with its TLS-RPT category. Exit status 0 when a policy was fetched; 1 when
 * none could be (no record, DNS failure, fetch failure); 2 for bad arguments.
 */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../controls/validate.js';
import { WireDnsClient } from '../dns/wire.js';
import { MTASTS_DB, MtaStsStore } from '../mtasts/store.js';
import { DEFAULT_FETCH_TIMEOUT_MS } from '../mtasts/fetch.js';
import { checkedDomain, lookupStsTxt, MtaStsResolver, shown, type StsShown, type StsTxtLookup } from '../mtasts/resolver.js';
import { secureContextFor } from '../tls/trust.js';
import { collect, dataDirOption, out, outJson, withClosing, withStore } from './common.js';

const iso = (ms: number): string => new Date(ms).toISOString();

function duration(seconds: number): string {
  if (seconds >= 86_400 && seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  return `${seconds} s`;
}

/** The JSON form of a cache entry: times as ISO 8601. */
function entryJson(e: StsShown | null) {
  return {
    policy: e?.policy
      ? {
          id: e.policy.id,
          mode: e.policy.mode,
          mx: e.policy.mx,
          maxAge: e.policy.maxAge,
          fetchedAt: iso(e.policy.fetchedAt),
          expiresAt: iso(e.policy.expiresAt),
          expired: e.policy.expired,
          text: e.policy.text,
        }
      : null,
    lastError: e?.lastError ? { category: e.lastError.category, reason: e.lastError.reason, at: iso(e.lastError.at) } : null,
  };
}

function entryLines(domain: string, e: StsShown | null): string[] {
  const lines: string[] = [];
  const p = e?.policy;
  if (!p) {
    lines.push(`No MTA-STS policy cached for ${domain}.`);
  } else {
    lines.push(
      `MTA-STS policy of ${domain}${p.expired ? ' (EXPIRED: no longer applied)' : ''}`,
      `  Policy id:    ${p.id}`,
      `  Mode:         ${p.mode}`,
      `  MX patterns:  ${p.mx.length > 0 ? p.mx.join(', ') : '(none)'}`,
      `  max_age:      ${p.maxAge} (${duration(p.maxAge)})`,
      `  Fetched:      ${iso(p.fetchedAt)}`,
      `  Expires:      ${iso(p.expiresAt)}`,
    );
  }
  if (e?.lastError) lines.push(`  Last error:   ${iso(e.lastError.at)} ${e.lastError.category}: ${e.lastError.reason}`);
  return lines;
}

function txtLine(domain: string, txt: StsTxtLookup, cached: StsShown | null): string {
  switch (txt.kind) {
    case 'record': {
      const p = cached?.policy;
      if (!p) return `  Published id: ${txt.id}`;
      if (p.id === txt.id) return `  Published id: ${txt.id} (the cached policy's)`;
      return `  Published id: ${txt.id} (not the cached policy's ${p.id}: delivery will fetch the policy again)`;
    }
    case 'none':
      return `  Published:    no MTA-STS TXT record at _mta-sts.${domain}`;
    case 'invalid':
      return `  Published:    no usable MTA-STS TXT record: ${txt.reason}`;
    case 'temporary':
      return `  Published:    the TXT look-up of _mta-sts.${domain} failed: ${txt.reason}`;
  }
}

function port(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new ValidationError('--https-port', text, 'a port from 1 to 65535');
  return n;
}

function timeoutMs(text: string): number {
  const s = Number(text);
  if (!(s > 0) || !Number.isFinite(s)) throw new ValidationError('--timeout', text, 'a positive number of seconds');
  return Math.round(s * 1000);
}

export function addMtastsCommand(program: Command): void {
  const m = program.command('mtasts').description('MTA-STS (RFC 8461) policies of recipient domains: show the cached one, fetch it now');

  m.command('show')
    .description('the policy cached for DOMAIN (with --dns-server, also the id it publishes now)')
    .argument('<domain>')
    .option('--json', 'machine-readable output')
    .option('--dns-server <host:port>', 'also look up the published TXT record through this DNS server (repeatable)', collect)
    .addOption(dataDirOption())
    .action(async (domainArg: string, o: { json?: boolean; dnsServer?: string[]; dataDir: string }) => {
      const domain = checkedDomain(domainArg);
      // No mtasts.db yet (nothing ever fetched): nothing cached, and nothing created.
      const entry = existsSync(join(o.dataDir, MTASTS_DB)) ? withClosing(MtaStsStore.open(o.dataDir), (s) => s.get(domain)) : null;
      const e = entry ? shown(entry, Date.now()) : null;
      const published = o.dnsServer ? await lookupStsTxt(new WireDnsClient({ servers: o.dnsServer }), domain) : undefined;
      if (o.json) return outJson({ domain, ...entryJson(e), ...(published ? { published } : {}) });
      const lines = entryLines(domain, e);
      if (published) lines.push(txtLine(domain, published, e));
      out(lines.join('\n') + '\n');
    });

  m.command('refresh')
    .description('look up the TXT record and fetch the policy of DOMAIN now, and cache it')
    .argument('<domain>')
    .option('--json', 'machine-readable output')
    .option('--dns-server <host:port>', 'DNS server (repeatable; default: the system resolvers)', collect)
    .option('--https-port <n>', 'HTTPS port of the policy host', '443')
    .option('--timeout <seconds>', 'for the whole fetch', String(DEFAULT_FETCH_TIMEOUT_MS / 1000))
    .addOption(dataDirOption())
    .action(async (domainArg: string, o: { json?: boolean; dnsServer?: string[]; httpsPort: string; timeout: string; dataDir: string }) => {
      const domain = checkedDomain(domainArg);
      const httpsPort = port(o.httpsPort);
      const fetchTimeoutMs = timeoutMs(o.timeout);
      const dns = new WireDnsClient({ servers: o.dnsServer });
      // The delivery trust store: the system's roots (unless turned off) and the certconfig authorities.
      const trust = withStore(o.dataDir, (s) => ({ useSystem: s.globals().useSystemAuthorities, custom: s.authorities().map((a) => a.pem) }));
      const store = MtaStsStore.open(o.dataDir);
      let r;
      try {
        r = await new MtaStsResolver({ dns, store, secureContext: () => secureContextFor(trust), port: httpsPort, fetchTimeoutMs }).refresh(domain);
      } finally {
        store.close();
      }
      if (!r.fetched) process.exitCode = 1;
      if (o.json) return outJson({ domain, txt: r.txt, fetched: r.fetched, error: r.error ?? null, ...entryJson(r.entry) });
      const lines: string[] = [];
      if (r.txt.kind !== 'record') {
        lines.push(`Nothing fetched: ${txtLine(domain, r.txt, r.entry).replace(/^\s*Published:\s+/, '')}`);
      } else if (r.fetched) {
        lines.push(`Fetched the MTA-STS policy of ${domain} (id ${r.txt.id}).`);
      } else {
        lines.push(`Fetching the MTA-STS policy of ${domain} (id ${r.txt.id}) failed: ${r.error?.category}: ${r.error?.reason}`);
      }
      lines.push(...entryLines(domain, r.entry));
      const p = r.entry?.policy;
      if (!r.fetched && p && !p.expired) lines.push(`The cached policy (id ${p.id}) stays in force until ${iso(p.expiresAt)}.`);
      out(lines.join('\n') + '\n');
    });
}
