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
import { TlsRptStore } from '../observe/tlsrpt.js';
import { buildTlsRptReport, reportId } from '../manage/tlsrpt-report.js';
import { hostname } from 'node:os';
import { dataDirOption, err, out, outJson, withClosing } from './common.js';
import { clusterTlsReport, nodesLine } from '../cluster/reports.js';
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
    .option('--organization <name>', 'organization-name of the report (default: this host name)')
    .option('--contact <address>', 'contact-info of the report (default: postmaster@ this host name)')
    .addOption(dataDirOption())
    .action((o: { domain: string; day: string; json?: boolean; organization?: string; contact?: string; dataDir: string }) => {
      const domain = normaliseDomain(o.domain.trim());
      if (!domain) throw new ValidationError('--domain', o.domain, 'a domain name (example.com)');
      if (!/^\d{4}-\d{2}-\d{2}$/.test(o.day) || Number.isNaN(Date.parse(`${o.day}T00:00:00Z`)) || new Date(`${o.day}T00:00:00Z`).toISOString().slice(0, 10) !== o.day) {
        throw new ValidationError('--day', o.day, 'a UTC day as YYYY-MM-DD');
      }
      const rows = existsSync(join(o.dataDir, 'report.db')) ? withSessions(o.dataDir, (s) => s.sessions(o.day, domain)) : [];
      const host = hostname();
      const r = buildTlsRptReport(rows, { domain, day: o.day, organization: o.organization ?? host, contact: o.contact ?? `postmaster@${host}`, reportId: reportId(o.day, domain, Date.now()) });
      if (o.json) return outJson(r);
      if (!r) return out(`No TLS sessions to ${domain} on ${o.day}.\n`);
      out(`TLS sessions to ${domain} on ${o.day} (RFC 8460; --json for the report itself)\n`);
      for (const p of r.policies) {
        out(`\nPolicy ${p.policy['policy-type']}${p.policy['policy-string'] ? `: ${p.policy['policy-string'].join('; ')}` : ''}\n`);
        out(`  successful sessions: ${p.summary['total-successful-session-count']}, failed: ${p.summary['total-failure-session-count']}\n`);
        for (const d of p['failure-details'] ?? []) out(`  ${d['failed-session-count']} × ${d['result-type']}: ${d['receiving-mx-hostname']}${d['receiving-ip'] ? ` [${d['receiving-ip']}]` : ''} from ${d['sending-mta-ip'] || '(no connection)'}\n`);
      }
    });
}

function withSessions<T>(dataDir: string, fn: (r: TlsRptStore) => T): T {
  return withClosing(TlsRptStore.open(dataDir), fn);
}

function withReport<T>(dataDir: string, fn: (r: TlsReportStore) => T): T {
  return withClosing(TlsReportStore.open(dataDir), fn);
}
