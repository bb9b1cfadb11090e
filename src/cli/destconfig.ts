/**
 * `postern destconfig`: batch forms of the destination-controls operations — new, edit,
 * default, delete, list, setup, detail, clear, import, export. Each is a thin shell over
 * ConfigStore and the pure modules in src/controls, so scripts, the dialogue and the web page
 * cannot disagree. Exit status: 0 done; 2 a rejected value, file or unconfirmed CLEAR (nothing
 * changed); 1 any other failure (e.g. no such entry, export target exists).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { CertificateStore } from '../config/certificates.js';
import { ProfileStore } from '../config/profiles.js';
import { ConfigError, ConfigStore } from '../config/store.js';
import { exportFile, parseImport } from '../controls/ini.js';
import { displayName, parseDestinationName } from '../controls/names.js';
import { resolveEntry } from '../controls/table.js';
import { DEFAULT_ENTRY_NAME, INITIAL_DEFAULTS, type DefaultSettingName, type Entry, type PartialSettings, type Settings } from '../controls/types.js';
import { cliBy, recorder } from '../manage/audit.js';
import { checkGlobalsInput, DestinationService } from '../manage/destinations.js';
import { buildOptions, readConfigFile } from '../config/options.js';
import { deliveryDns } from '../dns/client.js';
import { MtaStsResolver } from '../mtasts/resolver.js';
import { MtaStsStore } from '../mtasts/store.js';
import { secureContextFor } from '../tls/trust.js';
import { explain, explanationLines } from '../manage/explain.js';
import { QueueStore } from '../queue/store.js';
import { collect, dataDirOption, err, out, outJson, withStore } from './common.js';
import { detailLines, entriesConfigured, formatTable, LIST_HEADER, listRows, SETTING_NOTES, REQUIRED_TLS_ALERT_NOTE } from './format.js';
import { BOUNCE_VERIFICATION_HELP, DANE_HELP, ENFORCE_HELP, LIMIT_PER_HELP, MTA_STS_HELP, parseSettingFlags, TLS_ALERT_HELP, type SettingFlags } from './settings-flags.js';
import { runDestconfigDialogue } from './dialogue/destconfig.js';
import { StreamIo } from './dialogue/io.js';

function settingOptions(cmd: Command): Command {
  return cmd
    .option('--tls <mode>', 'no, preferred, required, preferred-verify, required-verify, required-verify-hosted, default')
    .option('--concurrency <n>', 'concurrent connections, 1-1000, or default')
    .option('--messages-per-connection <n>', 'maximum messages per connection, 1-1000, or default')
    .option('--recipients <n/m>', 'N recipients (0-1000000000) per M minutes (1-60), none, or default')
    .option('--limit-per <scope>', `apply limits per: ${LIMIT_PER_HELP}`)
    .option('--enforce <scope>', `enforce limits: ${ENFORCE_HELP}`)
    .option('--bounce-verification <on|off>', `bounce verification address tagging: ${BOUNCE_VERIFICATION_HELP}`)
    .option('--bounce-profile <name>', 'bounce profile name, or default')
    .option('--tls-alert <on|off>', `alert when this entry's Required TLS fails (entries only): ${TLS_ALERT_HELP}`)
    .option('--dane <mode>', `DANE (RFC 7672), TLSA records under DNSSEC make STARTTLS mandatory and authenticate the MX host; required delivers only through hosts with usable records: ${DANE_HELP}`)
    .option('--mta-sts <on|off>', `MTA-STS (RFC 8461), an enforce policy limits delivery to the domain's listed MX hosts over verified TLS: ${MTA_STS_HELP}`)
    .option('--ip-preference <pref>', 'ipv6-preferred, ipv6-required, ipv4-preferred, ipv4-required, default');
}

/**
 * SPEC §2: when TLS is enabled while no certificate but the demo one is configured (or the
 * listener still offers the demo), say so as the seed document does.
 */
function demoWarning(tls: string | undefined, dataDir: string): void {
  if (!tls || tls === 'no' || tls === 'default') return;
  const c = CertificateStore.open(dataDir);
  let only: boolean;
  try {
    only = c.onlyDemo();
  } finally {
    c.close();
  }
  if (!only) return;
  err(
    "You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.\n" +
      'Enabling TLS uses the demo certificate, which is not secure.\n',
  );
}

/** The destination service for one command, acting for the user who runs it. */
function service(store: ConfigStore, dataDir: string): DestinationService {
  return new DestinationService(store, recorder(dataDir, cliBy()));
}

function settingNotes(settings: { bounceVerification?: boolean }): void {
  if (settings.bounceVerification === true) err(`${SETTING_NOTES.bounceVerification}\n`);
}

export function addDestconfigCommand(program: Command): void {
  const dc = program
    .command('destconfig')
    .description('destination controls: the per-domain table; without an operation, the interactive dialogue')
    .addOption(dataDirOption())
    .enablePositionalOptions()
    .action(async (o: { dataDir: string }) => runDialogue(o.dataDir));
  settingOptions(dc.command('new').argument('<domain>').addOption(dataDirOption()).description('create an entry')).action(
    (domain: string, o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, true);
      const name = withStore(o.dataDir, (s) => service(s, o.dataDir).newEntry(domain, p.settings));
      demoWarning(o.tls, o.dataDir);
      settingNotes(p.settings);
      out(`Created ${displayName(name)}.\n`);
    },
  );
  settingOptions(dc.command('edit').argument('<domain>').addOption(dataDirOption()).description('change an entry')).action(
    (domain: string, o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, true);
      const name = withStore(o.dataDir, (s) => service(s, o.dataDir).editEntry(domain, p.settings, p.reset));
      demoWarning(o.tls, o.dataDir);
      settingNotes(p.settings);
      out(`Changed ${displayName(name)}.\n`);
    },
  );
  settingOptions(dc.command('default').addOption(dataDirOption()).description('change the (Default) entry')).action(
    (o: SettingFlags & { dataDir: string }) => {
      const p = parseSettingFlags(o, false);
      withStore(o.dataDir, (s) => service(s, o.dataDir).editDefaults(p.settings));
      demoWarning(o.tls, o.dataDir);
      settingNotes(p.settings);
      out(`Changed ${DEFAULT_ENTRY_NAME}.\n`);
    },
  );
  dc.command('delete')
    .argument('<domain>')
    .addOption(dataDirOption())
    .description('remove an entry')
    .action((domain: string, o: { dataDir: string }) => {
      const name = withStore(o.dataDir, (s) => service(s, o.dataDir).deleteEntry(domain));
      out(`Deleted ${displayName(name)}.\n`);
    });
  dc.command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .description('summary of all entries')
    .action((o: { dataDir: string; json?: boolean }) => {
      const table = withStore(o.dataDir, (s) => s.table());
      if (o.json) {
        outJson(
          { default: table.defaults, entries: table.list().map((e) => ({ name: e.name, display: displayName(e.name), settings: e.settings })) },
        );
        return;
      }
      out(`${entriesConfigured(table.size + 1)}\n\n`);
      out(formatTable(LIST_HEADER, listRows(table)) + '\n');
    });
  dc.command('setup')
    .addOption(dataDirOption())
    .option('--broken-tls-memory <hours>', 'hours a host whose TLS handshake failed gets clear text under Preferred (0 = off)')
    .option('--required-tls-alert <on|off>', 'alert when a required TLS connection fails')
    .option('--report-retention <days>', 'days the TLS Connections report keeps its counts (1-3660, default 400)')
    .description('global settings')
    .action((o: { dataDir: string; brokenTlsMemory?: string; requiredTlsAlert?: string; reportRetention?: string }) => {
      const changes = checkGlobalsInput(
        { brokenTlsMemoryHours: o.brokenTlsMemory, requiredTlsAlert: o.requiredTlsAlert, reportRetentionDays: o.reportRetention },
        { brokenTlsMemoryHours: '--broken-tls-memory', requiredTlsAlert: '--required-tls-alert', reportRetentionDays: '--report-retention' },
      );
      const g = withStore(o.dataDir, (s) => service(s, o.dataDir).setGlobals(changes));
      if (changes.requiredTlsAlert === true) err(`${REQUIRED_TLS_ALERT_NOTE}\n`);
      out(
        `Remembered broken TLS: ${g.brokenTlsMemoryHours === 0 ? 'off' : `${g.brokenTlsMemoryHours} hours`}\n` +
          `Alert when a required TLS connection fails: ${g.requiredTlsAlert ? 'on' : 'off'}\n` +
          `TLS report keeps counts for: ${g.reportRetentionDays} days\n`,
      );
    });

  dc.command('explain')
    .argument('<domain>', 'a recipient domain')
    .addOption(dataDirOption())
    .option('--dns-server <host:port>', 'DNS server to ask, as delivery would (repeatable; default: the system resolvers)', collect)
    .option('--dnssec-resolver <host:port>', 'validating resolver whose DNSSEC answers are believed (repeatable; as start)', collect)
    .option('--https-port <n>', "port of MTA-STS policy hosts (default 443, as start)")
    .option('--smtp-port <n>', 'port of remote mail servers (default 25, as start)')
    .option('--config <file>', "take the DNS servers and SMTP port from start's JSON config file")
    .option('--json', 'machine-readable output')
    .description('what delivery would do for a domain, and why: entry, settings, route or MX hosts, TLS, identity checks')
    .action(async (domain: string, o: { dataDir: string; dnsServer?: string[]; dnssecResolver?: string[]; httpsPort?: string; smtpPort?: string; config?: string; json?: boolean }) => {
      const options = buildOptions(o.config ? readConfigFile(o.config) : {}, {
        dnsServers: o.dnsServer,
        dnssecResolvers: o.dnssecResolver,
        httpsPort: o.httpsPort === undefined ? undefined : Number(o.httpsPort),
        smtpPort: o.smtpPort === undefined ? undefined : Number.isInteger(Number(o.smtpPort)) ? Number(o.smtpPort) : (o.smtpPort as unknown as number),
      });
      const snapshot = withStore(o.dataDir, (s) => s.snapshot());
      const queue = QueueStore.open(o.dataDir);
      let broken;
      try {
        broken = queue.brokenTls(Date.now());
      } finally {
        queue.close();
      }
      const dns = deliveryDns({ dnsServers: options.dnsServers, dnssecResolvers: options.dnssecResolvers });
      // MTA-STS as delivery asks it: the cached policy, fetched when delivery would fetch it.
      const stsStore = MtaStsStore.open(o.dataDir);
      let e;
      try {
        const sts = new MtaStsResolver({ dns, store: stsStore, port: options.httpsPort, secureContext: () => secureContextFor({ useSystem: snapshot.globals.useSystemAuthorities, custom: snapshot.authorities.map((a) => a.pem) }) });
        e = await explain(snapshot, domain, { dns, smtpPort: options.smtpPort, broken, sts: (d) => sts.policyFor(d) });
      } finally {
        stsStore.close();
      }
      if (o.json) return outJson(e);
      out(explanationLines(e).join('\n') + '\n');
    });

  dc.command('detail')
    .argument('[domain]', 'an entry, or (Default); all entries when left out')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .description('every setting of one entry, or of all entries and (Default)')
    .action((domain: string | undefined, o: { dataDir: string; json?: boolean }) => {
      const { table, tlsAlertSwitch } = withStore(o.dataDir, (s) => ({ table: s.table(), tlsAlertSwitch: s.globals().requiredTlsAlert }));
      let shown: (Entry | undefined)[];
      if (domain === undefined) shown = [...table.list(), undefined];
      else if (domain.trim().toLowerCase() === DEFAULT_ENTRY_NAME.toLowerCase()) shown = [undefined];
      else {
        const name = parseDestinationName(domain);
        const e = table.get(name);
        if (!e) throw new ConfigError(`no entry for ${displayName(name)}`);
        shown = [e];
      }
      if (o.json) {
        const items = shown.map((e) => detailJson(e, table.defaults, tlsAlertSwitch));
        outJson(domain === undefined ? items : items[0]);
        return;
      }
      const blocks = shown.map((e) => detailLines(e?.name ?? DEFAULT_ENTRY_NAME, e, table.defaults).join('\n'));
      if (domain === undefined) out(`${entriesConfigured(table.size + 1)}\n\n`);
      out(blocks.join('\n\n') + '\n');
    });

  dc.command('clear')
    .addOption(dataDirOption())
    .option('--yes', 'confirm removing every entry but (Default)')
    .description('remove all entries but (Default)')
    .action((o: { dataDir: string; yes?: boolean }) => {
      // A script cannot answer the dialogue's "are you sure", so the flag is the confirmation.
      if (!o.yes) {
        const n = withStore(o.dataDir, (s) => s.table().size);
        err(`destconfig clear removes all ${n} entries but ${DEFAULT_ENTRY_NAME}; add --yes to confirm. Nothing was changed.\n`);
        process.exitCode = 2;
        return;
      }
      const n = withStore(o.dataDir, (s) => service(s, o.dataDir).clearEntries());
      out(`Removed ${n} entries; only ${DEFAULT_ENTRY_NAME} remains.\n`);
    });

  dc.command('import')
    .argument('<file>', 'an ini-style file as written by export')
    .addOption(dataDirOption())
    .description('replace the whole table with the contents of a file')
    .action((file: string, o: { dataDir: string }) => {
      const r = parseImport(readText(file));
      if (!r.ok) {
        for (const e of r.errors) err(`${file}:${e.line}: ${e.message}\n`);
        err(`postern: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'} in ${file}; the table was not changed.\n`);
        process.exitCode = 2;
        return;
      }
      withStore(o.dataDir, (s) => service(s, o.dataDir).importTable(r.defaults, r.entries, file));
      demoWarning([r.defaults.tls, ...r.entries.map((e) => e.settings.tls)].find((t) => t !== undefined && t !== 'no'), o.dataDir);
      out(`Imported ${file}.\n${entriesConfigured(r.entries.length + 1)}\n`);
    });

  dc.command('export')
    .argument('<file>', 'where to write the table')
    .addOption(dataDirOption())
    .option('--force', 'overwrite the file if it exists')
    .description('write the whole table to a file that import reads back')
    .action((file: string, o: { dataDir: string; force?: boolean }) => {
      const table = withStore(o.dataDir, (s) => s.table());
      try {
        // 'wx' fails on an existing file, so a typo cannot destroy an earlier export.
        writeFileSync(file, exportFile(table.defaults, table.list()), { flag: o.force ? 'w' : 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ConfigError(`${file} exists; add --force to overwrite it`);
        throw new ConfigError(`cannot write ${file}: ${(e as Error).message}`);
      }
      out(`Exported ${DEFAULT_ENTRY_NAME} and ${table.size} entries to ${file}.\n`);
    });
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

/** The interactive dialogue on this process's terminal or piped input. */
async function runDialogue(dataDir: string): Promise<void> {
  const store = ConfigStore.open(dataDir);
  const certs = CertificateStore.open(dataDir, store);
  const io = new StreamIo(process.stdin, process.stdout);
  try {
    await runDestconfigDialogue(io, {
      store,
      destinations: service(store, dataDir),
      onlyDemo: () => certs.onlyDemo(),
      bounceProfiles: () => new ProfileStore(store).list().map((p) => p.name),
      certificateNames: () => certs.list().map((c) => c.name),
      clientCertificate: () => certs.settings().client,
      setClientCertificate: (name) => void certs.useForClient(name),
      readFile: (path) => readFileSync(path, 'utf8'),
      writeFile: (path, text, overwrite) => writeFileSync(path, text, { flag: overwrite ? 'w' : 'wx' }),
      fileExists: (path) => existsSync(path),
    });
  } finally {
    io.close();
    certs.close();
    store.close();
  }
}

interface DetailJson {
  name: string;
  display: string;
  /** Every setting as in effect for the entry. */
  settings: Settings;
  /** The settings the entry holds itself (all of them for (Default)). */
  own: PartialSettings;
  inherited: DefaultSettingName[];
  /** Whether a failed Required TLS connection raises an alert, and what decides it. */
  requiredTlsAlert: { on: boolean; from: 'entry' | 'global switch' };
}

function detailJson(e: Entry | undefined, defaults: Settings, tlsAlertSwitch: boolean): DetailJson {
  if (!e) {
    return { name: DEFAULT_ENTRY_NAME, display: DEFAULT_ENTRY_NAME, settings: defaults, own: defaults, inherited: [], requiredTlsAlert: { on: tlsAlertSwitch, from: 'global switch' } };
  }
  const r = resolveEntry(e, defaults);
  // resolveEntry's key order is that of `defaults`; report it in the canonical order.
  const order = Object.keys(INITIAL_DEFAULTS) as DefaultSettingName[];
  return {
    name: e.name,
    display: displayName(e.name),
    settings: r.settings,
    own: e.settings,
    inherited: order.filter((k) => r.inherited.includes(k)),
    requiredTlsAlert: r.tlsAlert === undefined ? { on: tlsAlertSwitch, from: 'global switch' } : { on: r.tlsAlert, from: 'entry' },
  };
}
