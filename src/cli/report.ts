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
import { dataDirOption, err, out, outJson, withClosing } from './common.js';
import { clusterTlsReport, nodesLine } from '../cluster/reports.js';
import { formatTable } from './format.js';

export function addReportCommand(program: Command): void {
  const report = program.command('report').description('reports: tls');
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
}

function withReport<T>(dataDir: string, fn: (r: TlsReportStore) => T): T {
  return withClosing(TlsReportStore.open(dataDir), fn);
}
