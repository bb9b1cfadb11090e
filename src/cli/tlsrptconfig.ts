/**
 * `postern tlsrptconfig`: the settings of SMTP TLS Reporting (RFC 8460) — whether the daily
 * reports are sent, their organization-name and contact-info, and their sender — over
 * manage/tlsrpt-settings.ts (the service the page and the API use).
 */
import { Command } from 'commander';
import { cliBy, recorder } from '../manage/audit.js';
import { TlsRptSettingsService, defaultTlsRptSender, tlsRptState } from '../manage/tlsrpt-settings.js';
import { dataDirOption, gatewayHostname, out, outJson, withStore } from './common.js';

export function addTlsrptconfigCommand(program: Command): void {
  const t = program.command('tlsrptconfig').description('SMTP TLS Reporting (RFC 8460) daily reports: show, setup');
  t.command('show')
    .description('the TLS reporting settings: each value in effect, and whether it is the default')
    .option('--json', 'machine-readable output')
    .option('--hostname <name>', 'the host name the defaults are made of (default: the name the gateway last started with)')
    .addOption(dataDirOption())
    .action((o: { json?: boolean; hostname?: string; dataDir: string }) => {
      const host = o.hostname ?? gatewayHostname(o.dataDir);
      const g = withStore(o.dataDir, (store) => store.globals());
      const { settings: s, effective: e } = tlsRptState(g, host);
      if (o.json) return outJson({ hostname: host, settings: s, effective: e });
      const dflt = (isDefault: boolean, what: string) => (isDefault ? ` (default: ${what})` : ' (set)');
      out(`TLS reporting (RFC 8460): daily reports ${e.enabled ? 'are sent' : 'are not sent'}${e.enabled ? ' (default)' : ' (set; the default is to send them)'}.\n`);
      out(`Organization: ${e.organization}${dflt(s.organization === null, "this host's name")}\n`);
      out(`Contact: ${e.contact}${dflt(s.contact === null, 'the report sender')}\n`);
      out(`Sender: ${e.sender}${dflt(s.sender === null, defaultTlsRptSender('<host name>'))}\n`);
    });
  t.command('setup')
    .description('change the TLS reporting settings')
    .option('--enabled <yes|no>', 'send the daily reports (default yes)')
    .option('--organization <name>', "organization-name of the reports, or default (this host's name)")
    .option('--contact <text>', 'contact-info of the reports (an email address or a URL), or default (the report sender)')
    .option('--sender <address>', 'envelope and From address of mailed reports, or default (noreply-smtp-tls-reporting@ the host name)')
    .addOption(dataDirOption())
    .action((o: { enabled?: string; organization?: string; contact?: string; sender?: string; dataDir: string }) => {
      withStore(o.dataDir, (store) => new TlsRptSettingsService(store, recorder(o.dataDir, cliBy())).setup(o));
      out('Saved the TLS reporting settings.\n');
    });
}
