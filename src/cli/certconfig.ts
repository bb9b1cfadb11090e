/**
 * `postern certconfig`: certificates, their keys, the demo certificate, which certificate the
 * relay listener and the outbound client use, and the authorities trusted for verification.
 * A thin shell over CertificateStore (src/config/certificates.ts) and ConfigStore.
 *
 *   certconfig list [--json]                      every certificate and where it is used
 *   certconfig show NAME [--json]                 subject, SANs, validity, fingerprint, key type
 *   certconfig create NAME --cn CN [--dns NAME ...] [--key-type ec-p256|rsa-2048|rsa-4096] [--days N]
 *   certconfig import NAME --cert FILE --key FILE leaf (+ chain) and its private key
 *   certconfig export NAME [--out FILE] [--with-key]   the chain; the key only with --with-key
 *   certconfig delete NAME                        refused while in use
 *   certconfig use-listener NAME                  offered for STARTTLS (after the next start)
 *   certconfig use-client NAME|none               offered to receiving servers that ask
 *   certconfig use-admin NAME                     offered by the administration page (HTTPS)
 *   certconfig authority add|remove|list|system   custom trusted authorities
 *
 * No output but `export --with-key` ever contains a private key. Key files written by
 * `export --out` are created with mode 0600.
 */
import { Command, Option } from 'commander';
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { CertificateStore, DEMO_NAME, KEY_TYPES, type CertificateInfo, type KeyType } from '../config/certificates.js';
import { ValidationError } from '../controls/validate.js';
import { cliBy, recorder } from '../manage/audit.js';
import { AuthorityService, CertificateService } from '../manage/certificates.js';
import { collect, dataDirOption, err, out, outJson, withClosing, withStore } from './common.js';
import { formatTable } from './format.js';

/** Opens the certificate store (and its configuration store) for one command. */
function withCertificates<T>(dataDir: string, fn: (c: CertificateStore) => T): T {
  return withClosing(CertificateStore.open(dataDir), fn);
}

/** The certificate service (changes audited) for one command. */
function withService<T>(dataDir: string, fn: (c: CertificateService) => T): T {
  return withCertificates(dataDir, (c) => fn(new CertificateService(c, recorder(dataDir, cliBy()))));
}

async function withServiceAsync<T>(dataDir: string, fn: (c: CertificateService) => Promise<T>): Promise<T> {
  const c = CertificateStore.open(dataDir);
  try {
    return await fn(new CertificateService(c, recorder(dataDir, cliBy())));
  } finally {
    c.close();
  }
}

function readInput(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ValidationError(field, file, `a readable file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Writes `text` to `file`, mode 0600 from the first byte when it holds a key. */
function writeOutput(file: string, text: string, secret: boolean): void {
  const fd = openSync(file, 'w', secret ? 0o600 : 0o644);
  try {
    if (secret) fchmodSync(fd, 0o600);
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function usesText(uses: string[]): string {
  return uses.map((u) => (u === 'listener' ? 'relay listener' : u === 'admin' ? 'administration page' : 'outbound client')).join(', ') || '-';
}

function commonName(subject: string): string {
  const m = /(?:^|, )CN=([^,]*)/.exec(subject);
  return m ? m[1]! : subject;
}

function validityNote(c: CertificateInfo, now: number): string {
  if (Date.parse(c.notAfter) < now) return ' (EXPIRED)';
  if (Date.parse(c.notBefore) > now) return ' (NOT YET VALID)';
  return '';
}

function showLines(c: CertificateInfo, uses: string[], now: number): string {
  return [
    `Name:          ${c.name}${c.demo ? ' (the demo certificate: not secure, replace it)' : ''}`,
    `Subject:       ${c.subject}`,
    `Issuer:        ${c.issuer}${c.subject === c.issuer ? ' (self-signed)' : ''}`,
    `SANs:          ${c.sans.length ? c.sans.join(', ') : '(none)'}`,
    `Valid from:    ${c.notBefore}`,
    `Valid until:   ${c.notAfter}${validityNote(c, now)}`,
    `SHA-256:       ${c.fingerprint}`,
    `Key type:      ${c.keyType}`,
    `Chain:         ${c.chainLength} certificate${c.chainLength === 1 ? '' : 's'}`,
    `Created:       ${c.created}`,
    `Used by:       ${usesText(uses)}`,
  ].join('\n') + '\n';
}

export function addCertconfigCommand(program: Command): void {
  const cert = program.command('certconfig').description('certificates and trusted authorities');
  const auth = cert.command('authority').description('custom certificate authorities trusted for outbound verification');
  auth
    .command('add')
    .argument('<file>', 'PEM file with one or more CA certificates')
    .addOption(dataDirOption())
    .action((file: string, o: { dataDir: string }) => {
      const added = withStore(o.dataDir, (s) => new AuthorityService(s, recorder(o.dataDir, cliBy())).add(readFileSync(file, 'utf8')));
      out(added.length ? added.map((a) => `Added ${a.id}: ${a.subject} (SHA-256 ${a.fingerprint.slice(0, 16)}…)\n`).join('') : 'Already trusted; nothing added.\n');
    });
  auth
    .command('remove')
    .argument('<id>', 'authority id or SHA-256 fingerprint prefix')
    .addOption(dataDirOption())
    .action((id: string, o: { dataDir: string }) => {
      const a = withStore(o.dataDir, (s) => new AuthorityService(s, recorder(o.dataDir, cliBy())).remove(id));
      out(`Removed ${a.id}: ${a.subject}\n`);
    });
  auth
    .command('list')
    .addOption(dataDirOption())
    .action((o: { dataDir: string }) => {
      const [list, g] = withStore(o.dataDir, (s) => [s.authorities(), s.globals()] as const);
      out(`System authorities: ${g.useSystemAuthorities ? 'trusted' : 'not trusted'}\n`);
      const rows = list.map((a) => [String(a.id), a.subject, a.notAfter, a.fingerprint.slice(0, 16)]);
      out(rows.length ? formatTable(['ID', 'Subject', 'Valid until', 'SHA-256'], rows) + '\n' : 'No custom authorities.\n');
    });
  auth
    .command('system')
    .argument('<on|off>')
    .addOption(dataDirOption())
    .description("trust the system's root authorities or not")
    .action((v: string, o: { dataDir: string }) => {
      if (v !== 'on' && v !== 'off') throw new ValidationError('system authorities', v, 'on, off');
      withStore(o.dataDir, (s) => new AuthorityService(s, recorder(o.dataDir, cliBy())).useSystem(v === 'on'));
      out(`System authorities: ${v === 'on' ? 'trusted' : 'not trusted'}\n`);
    });

  addCertificateCommands(cert);
}

function addCertificateCommands(cert: Command): void {
  cert
    .command('list')
    .description('certificates and where they are used (never their keys)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) => {
      const [list, uses, g] = withCertificates(o.dataDir, (c) => {
        const l = c.list();
        return [l, l.map((x) => c.usesOf(x.name)), c.settings()] as const;
      });
      if (o.json) {
        outJson(
          { listenerCertificate: g.listener, clientCertificate: g.client, adminCertificate: g.admin, certificates: list.map((c, i) => ({ ...c, usedBy: uses[i] })) },
        );
        return;
      }
      const now = Date.now();
      out(`Relay listener certificate: ${g.listener}\nOutbound client certificate: ${g.client ?? 'none'}\nAdministration page certificate: ${g.admin}\n\n`);
      if (list.length === 0) {
        out(`No certificates. The demo certificate (${DEMO_NAME}) is created when the gateway first starts.\n`);
        return;
      }
      const rows = list.map((c, i) => [
        c.demo ? `${c.name} (demo, not secure)` : c.name,
        commonName(c.subject),
        c.notAfter.slice(0, 10) + validityNote(c, now),
        c.keyType,
        c.fingerprint.slice(0, 23),
        usesText(uses[i]!),
      ]);
      out(formatTable(['Name', 'Common name', 'Valid until', 'Key', 'SHA-256', 'Used by'], rows) + '\n');
    });

  cert
    .command('show')
    .description('details of one certificate (never its key)')
    .argument('<name>')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((name: string, o: { dataDir: string; json?: boolean }) => {
      const [c, uses] = withCertificates(o.dataDir, (s) => [s.get(name), s.usesOf(name)] as const);
      if (!c) throw new ValidationError('certificate name', name, 'the name of an existing certificate (see certconfig list)');
      const { chainPem: _chain, ...facts } = c;
      if (o.json) {
        outJson({ ...facts, usedBy: uses });
        return;
      }
      out(showLines(facts, uses, Date.now()));
    });

  cert
    .command('create')
    .description('generate a key and a self-signed certificate')
    .argument('<name>', 'certificate name: 1–64 of A-Z a-z 0-9 _ . -')
    .requiredOption('--cn <common-name>', 'subject common name, e.g. mail.example.com')
    .option('--dns <name>', 'subjectAltName DNS name (repeatable)', collect)
    .addOption(new Option('--key-type <type>', 'key type').choices([...KEY_TYPES]).default('ec-p256'))
    .option('--days <n>', 'validity in days (1–3650)', '365')
    .addOption(dataDirOption())
    .action(async (name: string, o: { cn: string; dns?: string[]; keyType: string; days: string; dataDir: string }) => {
      if (!/^\d+$/.test(o.days)) throw new ValidationError('days', o.days, 'a whole number of days from 1 to 3650');
      const c = await withServiceAsync(o.dataDir, (s) =>
        s.createSelfSigned({ name, commonName: o.cn, dnsNames: o.dns ?? [], keyType: o.keyType as KeyType, days: Number(o.days) }),
      );
      out(`Created certificate ${c.name}: ${c.subject}, ${c.keyType}, valid until ${c.notAfter}\nSHA-256 ${c.fingerprint}\n`);
    });

  cert
    .command('import')
    .description('import a certificate (leaf first, then its chain) and its private key, both PEM')
    .argument('<name>', 'certificate name: 1–64 of A-Z a-z 0-9 _ . -')
    .requiredOption('--cert <file>', 'PEM file: the certificate, then each issuer')
    .requiredOption('--key <file>', 'PEM file: the unencrypted private key')
    .addOption(dataDirOption())
    .action((name: string, o: { cert: string; key: string; dataDir: string }) => {
      const certPem = readInput(o.cert, 'certificate file');
      const keyPem = readInput(o.key, 'key file');
      const c = withService(o.dataDir, (s) => s.importPem({ name, certPem, keyPem }));
      const note = validityNote(c, Date.now());
      out(`Imported certificate ${c.name}: ${c.subject}, ${c.keyType}, valid until ${c.notAfter}${note}\nSHA-256 ${c.fingerprint}\n`);
      if (note) err(`Warning: certificate ${c.name} is${note.replace(/[()]/g, '').toLowerCase()}.\n`);
    });

  cert
    .command('export')
    .description('write the certificate chain as PEM (the private key only with --with-key)')
    .argument('<name>')
    .option('--out <file>', 'write to this file instead of standard output (mode 0600 with --with-key)')
    .option('--with-key', 'include the private key')
    .addOption(dataDirOption())
    .action((name: string, o: { out?: string; withKey?: boolean; dataDir: string }) => {
      const text = withService(o.dataDir, (s) => s.exportPem(name, { includeKey: o.withKey === true }));
      if (o.out) {
        writeOutput(o.out, text, o.withKey === true);
        err(`Wrote ${name} to ${o.out}${o.withKey ? ' (with its private key)' : ''}.\n`);
      } else {
        out(text);
      }
    });

  cert
    .command('delete')
    .description('remove a certificate and its key (refused while in use)')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      const c = withService(o.dataDir, (s) => s.delete(name));
      out(`Deleted certificate ${c.name}.\n`);
    });

  cert
    .command('use-listener')
    .description('the certificate the relay listener offers for STARTTLS')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      const c = withService(o.dataDir, (s) => s.useForListener(name));
      out(`The relay listener offers certificate ${c.name} (${c.subject}) from the next start of the gateway.\n`);
      if (c.demo) err('Warning: the demo certificate is not secure.\n');
    });

  cert
    .command('use-admin')
    .description('the certificate the administration page (HTTPS) offers')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      const c = withService(o.dataDir, (s) => s.useForAdmin(name));
      out(`The administration page offers certificate ${c.name} (${c.subject}) from the next start of the gateway.\n`);
      if (c.demo) err('Warning: the demo certificate is not secure.\n');
    });

  cert
    .command('use-client')
    .description('the client certificate offered to receiving servers that ask for one, or none')
    .argument('<name|none>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      const c = withService(o.dataDir, (s) => s.useForClient(name === 'none' ? null : name));
      out(c ? `Outbound connections offer client certificate ${c.name} (${c.subject}).\n` : 'Outbound connections offer no client certificate.\n');
    });
}
