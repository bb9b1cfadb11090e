/**
 * `postern tlsverify DOMAIN [HOST[:PORT]]`: connects exactly as delivery would (the same
 * routing, SMTP client, trust store and verification code, under Required - Verify or, with
 * --hosted, Required - Verify Hosted Domains) and prints each step. Exit status 0 only when
 * the connection was verified; 1 when it was not; 2 for bad arguments.
 */
import { Command } from 'commander';
import { CertificateStore } from '../config/certificates.js';
import { deliveryDns } from '../dns/client.js';
import { MtaStsResolver } from '../mtasts/resolver.js';
import { MtaStsStore } from '../mtasts/store.js';
import { describeFinding } from '../tls/sources.js';
import { buildOptions, DEFAULT_OPTIONS, parseRouteHost } from '../config/options.js';
import { ValidationError } from '../controls/validate.js';
import { BrokenTlsMemory } from '../delivery/broken-tls.js';
import { connect, type TraceEvent } from '../delivery/connect.js';
import { resolvePolicy } from '../delivery/policy.js';
import { formatEvent, type MailEvent } from '../observe/events.js';
import { normaliseDomain } from '../tls/names.js';
import { secureContextFor } from '../tls/trust.js';
import type { Comparison } from '../tls/identity.js';
import { escapeText } from '../observe/text.js';
import { collect, dataDirOption, out, withStore } from './common.js';

const ROLE: Record<Comparison['referenceRole'], string> = {
  'recipient-domain': 'recipient domain',
  'route-host': 'SMTP route host',
  'mx-host': 'MX host',
  'connected-host': 'host connected to',
};

export function traceLines(t: TraceEvent): string[] {
  switch (t.step) {
    case 'hosts':
      return [`Mail exchangers: ${t.hosts.map((h) => `${h.name}:${h.port} (${h.source === 'route' ? 'SMTP route' : h.source === 'mx' ? `MX ${h.preference}` : 'implicit MX'})`).join(', ')}`];
    case 'addresses':
      return [`Addresses of ${t.host}: ${t.addresses.join(', ')}`];
    case 'connected':
      return [``, `Connected to ${t.host} [${t.address}] port ${t.port}`, `  Greeting: ${t.greeting}`];
    case 'starttls':
      return [`  STARTTLS: ${t.offered ? 'offered' : 'not offered'}`];
    case 'starttls-reply':
      return [`  STARTTLS answered: ${t.reply}`];
    case 'tls':
      return [
        `  TLS: protocol ${t.protocol}, cipher ${t.cipher}`,
        `  Certificate: ${t.subject || '(no subject)'}`,
        `    issued by ${t.issuer || '(unknown)'}, valid from ${t.validFrom} to ${t.validTo}`,
      ];
    case 'policy':
      return [`TLS policy for ${t.host}: TLSA ${describeFinding(t.tlsa, t.dane)}; ${t.plan.use ? `${t.plan.why} (connection run as ${t.plan.mode})` : `not used: ${t.plan.reason}`}`];
    case 'source-verification':
      return [`  ${t.source === 'dane' ? 'DANE' : 'MTA-STS'}: ${t.text}`];
    case 'verification': {
      const r = t.result;
      const lines = [`  Chain: ${r.ok || r.stage === 'identity' ? 'trusted' : `NOT trusted: ${r.reason}`}`];
      const identity = r.identity;
      if (identity) {
        lines.push(`  Identity (${identity.algorithm === 'hosted' ? 'Hosted' : 'Verify'} algorithm):`);
        for (const c of identity.compared) {
          lines.push(`    ${c.reference} (${ROLE[c.referenceRole]}) vs ${c.presentedSource === 'CN' ? 'CN' : 'DNS'}:${c.presented}: ${c.result}`);
        }
        lines.push(identity.ok ? `  Identity: matched ${identity.matched.presented} (${identity.matched.result})` : `  Identity: failed: ${identity.reason}`);
      }
      return lines;
    }
  }
}

const SHOWN: MailEvent['event'][] = ['connection-failed', 'tls-failed'];

export function addTlsverifyCommand(program: Command): void {
  program
    .command('tlsverify')
    .description('connect to a domain as delivery would and show each step of TLS verification')
    .argument('<domain>')
    .argument('[host]', 'HOST[:PORT] to connect to instead of the domain\'s route or MX hosts')
    .addOption(dataDirOption())
    .option('--hosted', 'use the Hosted algorithm (Required - Verify Hosted Domains)')
    .option('--dns-server <host:port>', 'DNS server (repeatable; default: the system resolvers)', collect)
    .option('--dnssec-resolver <host:port>', 'validating resolver whose DNSSEC answers are believed (repeatable; as start)', collect)
    .option('--https-port <n>', "port of MTA-STS policy hosts (default 443, as start)")
    .option('--smtp-port <n>', 'port of remote mail servers', String(DEFAULT_OPTIONS.smtpPort))
    .option('--hostname <name>', 'EHLO name', DEFAULT_OPTIONS.hostname)
    .option('--timeout <seconds>', 'timeout for each step', '30')
    .action(async (domainArg: string, hostArg: string | undefined, o: { dataDir: string; hosted?: boolean; dnsServer?: string[]; dnssecResolver?: string[]; httpsPort?: string; smtpPort: string; hostname: string; timeout: string }) => {
      const domain = normaliseDomain(domainArg);
      if (!domain) throw new ValidationError('domain', domainArg, 'a domain name');
      const seconds = Number(o.timeout);
      if (!(seconds > 0)) throw new ValidationError('--timeout', o.timeout, 'a positive number of seconds');
      const t = seconds;
      const opts = buildOptions({}, {
        dnsServers: o.dnsServer,
        dnssecResolvers: o.dnssecResolver,
        smtpPort: Number(o.smtpPort),
        hostname: o.hostname,
        timeouts: { connect: t, greeting: t, ehlo: t, starttls: t, tlsHandshake: t, mail: t, rcpt: t, dataInit: t, dataBlock: t, dataTerm: t, quit: t },
      });
      const snapshot = withStore(o.dataDir, (s) => s.snapshot());
      const certs = CertificateStore.open(o.dataDir);
      let client;
      try {
        client = certs.clientCredentials();
      } finally {
        certs.close();
      }
      const policy = resolvePolicy(snapshot, domain);
      const mode = o.hosted ? 'required-verify-hosted' : 'required-verify';
      policy.entry = { ...policy.entry, settings: { ...policy.entry.settings, tls: mode } };
      if (hostArg) policy.route = [parseRouteHost(hostArg)];
      // Each line holds peers' text (greeting, certificate names, replies): escaped as one line.
      const print = (lines: string[]) => out(lines.map((l) => escapeText(l) + '\n').join(''));
      print([`Verifying TLS for ${domain} with the ${o.hosted ? 'Hosted' : 'Verify'} algorithm`]);
      let dcid = 0;
      const dns = deliveryDns({ dnsServers: opts.dnsServers, dnssecResolvers: opts.dnssecResolvers });
      // The recipient domain's MTA-STS policy, as delivery would have it (cached, or fetched now).
      let sts = null;
      if (policy.entry.settings.mtaSts && !hostArg) {
        const stsStore = MtaStsStore.open(o.dataDir);
        try {
          const r = await new MtaStsResolver({ dns, store: stsStore, port: o.httpsPort === undefined ? undefined : Number(o.httpsPort), secureContext: () => secureContextFor({ useSystem: snapshot.globals.useSystemAuthorities, custom: snapshot.authorities.map((a) => a.pem) }) }).policyFor(domain);
          sts = r.finding;
          print([`MTA-STS policy: ${sts ? `mode ${sts.mode}${sts.mx.length ? `, mx ${sts.mx.join(', ')}` : ''} (${r.source === 'fetched' ? 'fetched now' : 'cached'})` : 'none published'}${r.error ? `; ${r.error.category}: ${r.error.reason}` : ''}`]);
        } finally {
          stsStore.close();
        }
      }
      const result = await connect(policy, {
        sts,
        dns,
        log: { write: (e) => SHOWN.includes(e.event) && print([`  ${formatEvent(e)}`]) },
        trace: (ev) => print(traceLines(ev)),
        hostname: opts.hostname,
        smtpPort: opts.smtpPort,
        timeouts: opts.timeouts,
        broken: new BrokenTlsMemory(),
        secureContext: secureContextFor({
          useSystem: snapshot.globals.useSystemAuthorities,
          custom: snapshot.authorities.map((a) => a.pem),
          clientKey: client?.keyPem,
          clientCert: client?.certPem,
        }),
        nextDcid: () => ++dcid,
        now: Date.now,
      });
      if (result.ok) {
        await result.conn.session.quit();
        print(['', `Verdict: VERIFIED: ${domain} via ${result.conn.host.name} [${result.conn.address}]`]);
        return;
      }
      print(['', `Verdict: NOT VERIFIED: ${result.enhanced} ${result.reason}`]);
      process.exitCode = 1;
    });
}
