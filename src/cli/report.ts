/**
 * `postern report tls`: the TLS Connections report (SPEC §9) over a window, from report.db.
 */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseDomain } from '../tls/names.js';
import { ValidationError } from '../controls/validate.js';
import { cells, parseWindow, REPORT_HEADER, reportCsv, reportLines } from '../manage/tls-report.js';
import { TlsReportStore } from '../observe/tls-report.js';
import { TlsRptStore, type SessionRow } from '../observe/tlsrpt.js';
import { buildTlsRptReport, reportId } from '../manage/tlsrpt-report.js';
import { collect, dataDirOption, err, gatewayHostname, out, outJson, withClosing, withStore } from './common.js';
import { effectiveTlsRptSettings, type EffectiveTlsRptSettings } from '../manage/tlsrpt-settings.js';
import { TlsRptSendStore, type SendRow } from '../tlsrpt/sends.js';
import { networkDeps, TlsRptSender } from '../tlsrpt/sender.js';
import { QueueStore } from '../queue/store.js';
import { MailLog } from '../observe/maillog.js';
import { WireDnsClient } from '../dns/wire.js';
import { secureContextFor } from '../tls/trust.js';
import { clusterTlsReport, clusterTlsRptSessions, nodesLine } from '../cluster/reports.js';
import { formatTable } from './format.js';

export function addReportCommand(program: Command): void {
  const report = program.command('report').description('reports: tls, tlsrpt');
  report
    .command('tls')
    .description('TLS Connections: per destination domain, required/preferred TLS success and failure, clear connections, % TLS')
    .option('--last <period>', '1h, 1d, 7d, 30d, 90d or 1y (default 1d)')
    .option('--from <time>', 'start of the window (e.g. 2026-12-01 or 2026-12-01T13:00Z)')
    .option('--to <time>', 'end of the window (default now)')
    .option('--domain <domain>', 'only this recipient domain')
    .option('--json', 'machine-readable output')
    .option('--csv', 'CSV with a header row and a totals row')
    .option('--cluster', "every node of this data directory's cluster, summed")
    .addOption(dataDirOption())
    .action(async (o: { last?: string; from?: string; to?: string; domain?: string; json?: boolean; csv?: boolean; cluster?: boolean; dataDir: string }) => {
      if (o.cluster) {
        const r = await clusterTlsReport(o.dataDir, o, Date.now());
        if (o.json) return outJson({ from: r.from, to: r.to, rows: r.rows, totals: r.totals, nodes: r.nodes, missing: r.missing });
        if (r.missing.length) err(`postern: ${nodesLine(r)}\n`);
        if (o.csv) return void process.stdout.write(reportCsv(r));
        out(`TLS Connections from ${r.from} to ${r.to}, whole cluster\n${nodesLine(r)}\n\n`);
        return out(formatTable(REPORT_HEADER, [...r.rows.map(cells), cells(r.totals)]) + '\n');
      }
      const w = parseWindow(o, Date.now());
      const domain = o.domain === undefined ? undefined : normaliseDomain(o.domain.trim());
      if (domain === null) throw new ValidationError('--domain', o.domain, 'a domain name (example.com)');
      // No report.db yet (the gateway has not run): an empty report, and nothing created.
      const rows = existsSync(join(o.dataDir, 'report.db')) ? withReport(o.dataDir, (r) => r.query(w.from, w.to, domain)) : [];
      const lines = reportLines(rows);
      if (o.json) return outJson({ from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), rows: lines.rows, totals: lines.totals });
      if (o.csv) return void process.stdout.write(reportCsv(lines));
      out(`TLS Connections from ${new Date(w.from).toISOString()} to ${new Date(w.to).toISOString()}\n\n`);
      out(formatTable(REPORT_HEADER, [...lines.rows.map(cells), cells(lines.totals)]) + '\n');
    });
  report
    .command('tlsrpt')
    .description("an SMTP TLS Reporting report (RFC 8460) of one recipient domain's TLS sessions on one UTC day")
    .requiredOption('--domain <domain>', 'the policy (recipient) domain')
    .requiredOption('--day <YYYY-MM-DD>', 'the UTC day')
    .option('--json', 'the report as RFC 8460 JSON (as it would be sent)')
    .option('--send', "send it now to the destinations the domain's _smtp._tls record names (again, if it was sent)")
    .option('--dns-server <host:port>', 'with --send: DNS server for the _smtp._tls record and the collectors (repeatable; default: the system resolvers)', collect)
    .option('--cluster', "every node of this data directory's cluster, summed")
    .option('--organization <name>', 'organization-name of the report (default: tlsrptconfig)')
    .option('--contact <address>', 'contact-info of the report (default: tlsrptconfig)')
    .addOption(dataDirOption())
    .action(async (o: { domain: string; day: string; json?: boolean; send?: boolean; cluster?: boolean; dnsServer?: string[]; organization?: string; contact?: string; dataDir: string }) => {
      const domain = normaliseDomain(o.domain.trim());
      if (!domain) throw new ValidationError('--domain', o.domain, 'a domain name (example.com)');
      if (!/^\d{4}-\d{2}-\d{2}$/.test(o.day) || Number.isNaN(Date.parse(`${o.day}T00:00:00Z`)) || new Date(`${o.day}T00:00:00Z`).toISOString().slice(0, 10) !== o.day) {
        throw new ValidationError('--day', o.day, 'a UTC day as YYYY-MM-DD');
      }
      const [globals, trust] = withStore(o.dataDir, (s) => [s.globals(), { useSystem: s.globals().useSystemAuthorities, custom: s.authorities().map((a) => a.pem) }] as const);
      const host = gatewayHostname(o.dataDir);
      const settings = { ...effectiveTlsRptSettings(globals, host), ...(o.organization ? { organization: o.organization } : {}), ...(o.contact ? { contact: o.contact } : {}) };
      // In a cluster: every node's sessions, summed (the nodes that did not answer are named).
      const fromCluster = o.cluster ? await clusterTlsRptSessions(o.dataDir, o.day, domain) : null;
      if (fromCluster?.missing.length) err(`postern: ${nodesLine(fromCluster)}\n`);
      const sessionsOf = async (d: string, x: string) => fromCluster?.sessions ?? (existsSync(join(o.dataDir, 'report.db')) ? withSessions(o.dataDir, (s) => s.sessions(d, x)) : []);
      if (o.send) return sendNow(o.dataDir, domain, o.day, { settings, host, trust, dnsServers: o.dnsServer, json: o.json === true, sessions: sessionsOf });
      const rows = await sessionsOf(o.day, domain);
      const sent = existsSync(join(o.dataDir, 'report.db')) ? withSessions(o.dataDir, (s) => new TlsRptSendStore(s.db).of(o.day, domain)) : [];
      const r = buildTlsRptReport(rows, { domain, day: o.day, organization: settings.organization, contact: settings.contact, reportId: sent[0]?.reportId || reportId(o.day, domain, Date.now()) });
      if (o.json) return outJson(r);
      if (!r) return out(`No TLS sessions to ${domain} on ${o.day}.\n`);
      out(`TLS sessions to ${domain} on ${o.day} (RFC 8460; --json for the report itself)\n`);
      for (const p of r.policies) {
        out(`\nPolicy ${p.policy['policy-type']}${p.policy['policy-string'] ? `: ${p.policy['policy-string'].join('; ')}` : ''}\n`);
        out(`  successful sessions: ${p.summary['total-successful-session-count']}, failed: ${p.summary['total-failure-session-count']}\n`);
        for (const d of p['failure-details'] ?? []) out(`  ${d['failed-session-count']} × ${d['result-type']}: ${d['receiving-mx-hostname']}${d['receiving-ip'] ? ` [${d['receiving-ip']}]` : ''} from ${d['sending-mta-ip'] || '(no connection)'}\n`);
      }
      out(sent.length ? `\nSent:\n${sendLines(sent)}` : `\nNot sent yet (reports go out after the UTC day; --send sends it now).\n`);
    });
}

function sendLines(rows: SendRow[]): string {
  return rows.map((r) => `  ${r.destination || `_smtp._tls.${r.policyDomain}`}: ${r.status}: ${r.detail}\n`).join('');
}

/** `--send`: the report built and sent now, as the gateway does after each day (tlsrpt/sender.ts). */
async function sendNow(
  dataDir: string,
  domain: string,
  day: string,
  o: { settings: EffectiveTlsRptSettings; host: string; trust: { useSystem: boolean; custom: string[] }; dnsServers?: string[]; json: boolean; sessions: (day: string, domain: string) => Promise<SessionRow[]> },
): Promise<void> {
  const sessions = TlsRptStore.open(dataDir);
  const queue = QueueStore.open(dataDir);
  const log = new MailLog(dataDir);
  try {
    const sender = new TlsRptSender({
      ...networkDeps(new WireDnsClient({ servers: o.dnsServers }), () => secureContextFor(o.trust)),
      sessions: o.sessions,
      sends: new TlsRptSendStore(sessions.db),
      accept: (m) => queue.accept(m),
      settings: () => o.settings,
      hostname: o.host,
      log,
    });
    const r = await sender.sendReport(day, domain, { again: true });
    if (o.json) return outJson({ report: r.report, sent: r.rows.map(({ body: _body, ...row }) => row) });
    if (!r.report) return out(`No TLS sessions to ${domain} on ${day}: nothing to send.\n`);
    out(`TLS report ${r.report['report-id']} for ${domain} of ${day}:\n${sendLines(r.rows)}`);
    if (!r.rows.some((x) => x.status === 'sent' || x.status === 'queued')) process.exitCode = 1;
  } finally {
    queue.close();
    sessions.close();
    await log.close();
  }
}

function withSessions<T>(dataDir: string, fn: (r: TlsRptStore) => T): T {
  return withClosing(TlsRptStore.open(dataDir), fn);
}

function withReport<T>(dataDir: string, fn: (r: TlsReportStore) => T): T {
  return withClosing(TlsReportStore.open(dataDir), fn);
}
