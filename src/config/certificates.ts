/**
 * Certificates and their private keys (SPEC §6, §10 `certconfig`, §2 demo-certificate warning).
 *
 * Certificates (the chain, leaf first, and facts read from the leaf) live in the table
 * `certificates` of `<data-dir>/config.db`; each private key lives in its own file
 * `<data-dir>/keys/<name>.key` (PKCS#8 PEM, mode 0600, directory 0700). A key file is written to
 * a temporary file created with mode 0600 and renamed into place, so no key is ever readable by
 * others, not even for a moment. Key file and row are written inside one IMMEDIATE transaction,
 * so two processes creating the same name cannot leave a key that does not match its row.
 *
 * Which certificate is used where is kept in the global settings of ConfigStore:
 * `listenerCertificate` (offered by the relay listener for STARTTLS; default `demo`) and
 * `clientCertificate` (offered to receiving servers that ask for one; default none).
 *
 * Contract of CertificateStore:
 * - open(dataDir, config?)   opens (and creates) the table; uses `config` for the global settings
 *                            or opens a ConfigStore of its own. close() closes what it opened.
 * - list() / get(name)       facts about certificates (never the private key); get → undefined
 *                            when there is no such certificate.
 * - createSelfSigned(o)      new key (EC P-256, RSA 2048 or RSA 4096, from node:crypto) and a
 *                            self-signed certificate for o.commonName + o.dnsNames, valid o.days.
 * - importPem(o)             stores a leaf (+ chain) and its key after checking that every PEM
 *                            block parses, the chain is in order and the key matches the leaf.
 * - exportPem(name, o)       the chain as PEM; the private key only with `includeKey: true`.
 * - delete(name)             refused while the listener or the outbound client uses it.
 * - useForListener(name) / useForClient(name | null)   change the global settings;
 *                            settings() reads them, usesOf(name) says where one is used.
 * - credentials(name)        key + chain for a TLS context; listenerCredentials(),
 *                            clientCredentials() for the configured ones.
 * - ensureDemo(o?)           creates the demo certificate `demo` when no certificate exists or
 *                            the listener is set to `demo` and it is missing; true if it did.
 * - onlyDemo()               true while no certificate but the demo exists or the listener
 *                            offers the demo: the case in which enabling TLS must warn.
 * Rejected input throws ValidationError (naming the field and the value), a conflict with the
 * stored state ConfigError; nothing is changed by a rejected operation.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from './secret-file.js';
import type * as X509 from '@peculiar/x509';
import { ValidationError } from '../controls/validate.js';
import { normaliseDomain } from '../tls/names.js';
import { openDb, type Db } from './db.js';
import { ConfigError, ConfigStore } from './store.js';

export const KEY_TYPES = ['ec-p256', 'rsa-2048', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export const DEMO_NAME = 'demo';
export const DEMO_COMMON_NAME = 'Postern Demo Certificate';
/** The organisation of the demo certificate's subject says plainly what it is. */
export const DEMO_ORGANISATION = 'Postern demo certificate - NOT SECURE - replace it with certconfig';
const DEMO_DAYS = 3650;
const DEMO_KEY_TYPE: KeyType = 'rsa-2048';

export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const DAYS_RANGE = { min: 1, max: 3650 };

/** What is known about a stored certificate; never holds the private key. */
export interface CertificateInfo {
  name: string;
  /** Subject of the leaf, RDNs joined with ", " (e.g. "CN=mail.example.com, O=Example"). */
  subject: string;
  /** Issuer of the leaf, same form. */
  issuer: string;
  /** subjectAltName entries of the leaf as Node prints them ("DNS:a.example", "IP Address:…"). */
  sans: string[];
  /** ISO 8601. */
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the leaf's DER, "AB:CD:…" (the form of `X509Certificate.fingerprint256`). */
  fingerprint: string;
  /** ec-p256, rsa-2048, rsa-4096, or for imported keys e.g. ec-p384, rsa-3072, ed25519. */
  keyType: string;
  /** Number of certificates in the chain (1 = the leaf alone). */
  chainLength: number;
  /** ISO 8601, when it was created or imported. */
  created: string;
  demo: boolean;
}

export interface StoredCertificate extends CertificateInfo {
  /** Leaf first, then each issuer; PEM. */
  chainPem: string;
}

/** What a TLS context needs. */
export interface Credentials {
  name: string;
  keyPem: string;
  /** Chain, leaf first. */
  certPem: string;
}

export interface CreateOptions {
  name: string;
  commonName: string;
  dnsNames?: string[];
  keyType?: KeyType;
  days?: number;
}

export interface ImportOptions {
  name: string;
  /** Leaf first, then its issuers. */
  certPem: string;
  keyPem: string;
}

export type CertificateUse = 'listener' | 'client' | 'admin';

/** Where each use is, and the command that moves it elsewhere. */
const USE_TEXT: Record<CertificateUse, { where: string; fix: string }> = {
  listener: { where: 'used by the relay listener', fix: 'certconfig use-listener OTHER' },
  client: { where: 'used as the outbound client certificate', fix: 'certconfig use-client OTHER|none' },
  admin: { where: 'used by the administration page', fix: 'certconfig use-admin OTHER' },
};

export const CERTIFICATES_SCHEMA = `
CREATE TABLE IF NOT EXISTS certificates (
  name TEXT PRIMARY KEY,
  chain_pem TEXT NOT NULL,
  subject TEXT NOT NULL,
  issuer TEXT NOT NULL,
  sans TEXT NOT NULL,
  not_before TEXT NOT NULL,
  not_after TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  key_type TEXT NOT NULL,
  chain_length INTEGER NOT NULL,
  created TEXT NOT NULL
);
`;

interface Row {
  name: string;
  chain_pem: string;
  subject: string;
  issuer: string;
  sans: string;
  not_before: string;
  not_after: string;
  fingerprint: string;
  key_type: string;
  chain_length: number;
  created: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

// ---- @peculiar/x509, loaded on first use -------------------------------------------------

type ReflectWithMetadata = typeof Reflect & { getMetadata?: unknown };
let x509Loading: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509 needs a Reflect metadata polyfill loaded before it. Only certificate creation
 * needs the library, so it is loaded then, not by every command that reads certificates. A
 * polyfill already present (e.g. the test CA's) is kept: replacing it would lose the metadata
 * already recorded through it.
 */
function loadX509(): Promise<typeof X509> {
  x509Loading ??= (async () => {
    if (typeof (Reflect as ReflectWithMetadata).getMetadata !== 'function') await import('reflect-metadata');
    const mod = await import('@peculiar/x509');
    mod.cryptoProvider.set(webcrypto);
    return mod;
  })();
  return x509Loading;
}

// ---- pure helpers --------------------------------------------------------------------------

export function checkName(name: string): string {
  if (!NAME_PATTERN.test(name)) throw new ValidationError('certificate name', name, '1–64 characters of A-Z a-z 0-9 _ . -');
  return name;
}

function oneLine(dn: string): string {
  return dn.split('\n').filter((s) => s !== '').join(', ');
}

function isoDate(nodeDate: string): string {
  const d = new Date(nodeDate);
  return Number.isNaN(d.getTime()) ? nodeDate : d.toISOString();
}

/** Describes a private or public key: ec-p256, rsa-2048, ed25519, … */
export function describeKey(k: KeyObject): string {
  const type = k.asymmetricKeyType ?? 'unknown';
  const d = k.asymmetricKeyDetails;
  if (type === 'rsa' || type === 'rsa-pss') return `${type}-${d?.modulusLength ?? '?'}`;
  if (type === 'ec') {
    const curve = d?.namedCurve ?? '?';
    const short: Record<string, string> = { prime256v1: 'p256', secp384r1: 'p384', secp521r1: 'p521' };
    return `ec-${short[curve] ?? curve}`;
  }
  return type;
}

/** Splits a PEM bundle into parsed certificates; throws ValidationError naming `field`. */
function parseChain(pem: string, field: string): { pem: string; x: X509Certificate }[] {
  const blocks = pem.match(PEM_CERT);
  if (!blocks) throw new ValidationError(field, '(contents)', 'one or more PEM certificates (-----BEGIN CERTIFICATE-----), the leaf first');
  return blocks.map((b, i) => {
    try {
      return { pem: `${b}\n`, x: new X509Certificate(b) };
    } catch (e) {
      throw new ValidationError(field, `certificate #${i + 1}`, `a parsable X.509 certificate (${(e as Error).message})`);
    }
  });
}

function parseKey(pem: string, field: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ValidationError(field, '(contents)', 'a PEM private key (-----BEGIN PRIVATE KEY----- / RSA / EC)');
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new ValidationError(field, '(encrypted key)', 'an unencrypted PEM private key (decrypt it first, e.g. openssl pkey -in KEY -out PLAIN)');
  }
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new ValidationError(field, '(contents)', `a parsable PEM private key (${(e as Error).message})`);
  }
}

function facts(name: string, chain: { pem: string; x: X509Certificate }[], keyType: string, created: Date): Row {
  const leaf = chain[0]!.x;
  return {
    name,
    chain_pem: chain.map((c) => c.pem).join(''),
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
    sans: JSON.stringify(leaf.subjectAltName ? leaf.subjectAltName.split(/,\s*/) : []),
    not_before: isoDate(leaf.validFrom),
    not_after: isoDate(leaf.validTo),
    fingerprint: leaf.fingerprint256,
    key_type: keyType,
    chain_length: chain.length,
    created: created.toISOString(),
  };
}

function info(r: Row): CertificateInfo {
  return {
    name: r.name,
    subject: r.subject,
    issuer: r.issuer,
    sans: JSON.parse(r.sans) as string[],
    notBefore: r.not_before,
    notAfter: r.not_after,
    fingerprint: r.fingerprint,
    keyType: r.key_type,
    chainLength: r.chain_length,
    created: r.created,
    demo: r.name === DEMO_NAME,
  };
}

/** Positive serial of 16 random bytes (high bit clear, so DER needs no sign byte). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

function checkCreate(o: CreateOptions): { name: string; commonName: string; dnsNames: string[]; keyType: KeyType; days: number } {
  const name = checkName(o.name);
  const commonName = o.commonName.trim();
  if (commonName.length < 1 || commonName.length > 64 || /[\u0000-\u001f\u007f]/.test(commonName)) {
    throw new ValidationError('common name', o.commonName, '1–64 printable characters');
  }
  const dnsNames = (o.dnsNames ?? []).map((d) => {
    const wildcard = d.startsWith('*.');
    const n = normaliseDomain(wildcard ? d.slice(2) : d);
    if (n === null || (wildcard && !n.includes('.'))) {
      throw new ValidationError('DNS name', d, 'a host name such as mail.example.com, or *.example.com');
    }
    return wildcard ? `*.${n}` : n;
  });
  const keyType = o.keyType ?? 'ec-p256';
  if (!(KEY_TYPES as readonly string[]).includes(keyType)) throw new ValidationError('key type', keyType, KEY_TYPES.join(', '));
  const days = o.days ?? 365;
  if (!Number.isInteger(days) || days < DAYS_RANGE.min || days > DAYS_RANGE.max) {
    throw new ValidationError('days', o.days, `a whole number of days from ${DAYS_RANGE.min} to ${DAYS_RANGE.max}`);
  }
  return { name, commonName, dnsNames: [...new Set(dnsNames)], keyType, days };
}

/** Generates a key pair and a self-signed leaf (CA:FALSE, serverAuth + clientAuth). */
async function generate(
  commonName: string,
  organisation: string | undefined,
  dnsNames: string[],
  keyType: KeyType,
  days: number,
  now: Date,
): Promise<{ certPem: string; key: KeyObject }> {
  const x509 = await loadX509();
  const pair =
    keyType === 'ec-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: keyType === 'rsa-2048' ? 2048 : 4096 });
  const alg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams =
    keyType === 'ec-p256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const signing: webcrypto.EcdsaParams | webcrypto.Algorithm = keyType === 'ec-p256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pair.privateKey.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', pair.publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']);
  const usage =
    keyType === 'ec-p256' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (dnsNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))));
  const subject: X509.JsonName = [{ CN: [commonName] }];
  if (organisation) subject.push({ O: [organisation] });
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: subject,
    // A little in the past, so that a peer whose clock is slightly behind accepts it.
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    signingAlgorithm: { ...signing, hash: 'SHA-256' },
    keys: { privateKey, publicKey },
    extensions,
  });
  const certPem = cert.toString('pem');
  return { certPem: certPem.endsWith('\n') ? certPem : `${certPem}\n`, key: pair.privateKey };
}

// ---- the store ------------------------------------------------------------------------------

export class CertificateStore {
  private constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly config: ConfigStore,
    private readonly ownsConfig: boolean,
  ) {}

  static open(dataDir: string, config?: ConfigStore): CertificateStore {
    const db = openDb(dataDir, 'config.db');
    db.exec(CERTIFICATES_SCHEMA);
    return new CertificateStore(db, dataDir, config ?? ConfigStore.open(dataDir), config === undefined);
  }

  close(): void {
    this.db.close();
    if (this.ownsConfig) this.config.close();
  }

  get keyDir(): string {
    return join(this.dataDir, 'keys');
  }

  keyPath(name: string): string {
    return join(this.keyDir, `${checkName(name)}.key`);
  }

  list(): CertificateInfo[] {
    return (this.db.prepare('SELECT * FROM certificates ORDER BY name').all() as Row[]).map(info);
  }

  get(name: string): StoredCertificate | undefined {
    const r = this.db.prepare('SELECT * FROM certificates WHERE name = ?').get(name) as Row | undefined;
    return r ? { ...info(r), chainPem: r.chain_pem } : undefined;
  }

  private require(name: string): StoredCertificate {
    const c = this.get(name);
    if (!c) throw new ConfigError(`no certificate named ${JSON.stringify(name)} (see certconfig list)`);
    return c;
  }

  /** The names in use: the listener's certificate (default demo) and the client's (null = none). */
  settings(): { listener: string; client: string | null; admin: string } {
    const g = this.config.globals();
    return { listener: g.listenerCertificate ?? DEMO_NAME, client: g.clientCertificate ?? null, admin: g.adminCertificate ?? DEMO_NAME };
  }

  /** Where a certificate is used: the settings that refer to it. */
  usesOf(name: string): CertificateUse[] {
    const g = this.config.globals();
    const uses: CertificateUse[] = [];
    if ((g.listenerCertificate ?? DEMO_NAME) === name) uses.push('listener');
    if (g.clientCertificate === name) uses.push('client');
    if ((g.adminCertificate ?? DEMO_NAME) === name) uses.push('admin');
    return uses;
  }

  async createSelfSigned(o: CreateOptions): Promise<CertificateInfo> {
    const c = checkCreate(o);
    if (c.name === DEMO_NAME) throw new ValidationError('certificate name', c.name, `any name but "${DEMO_NAME}", which is reserved for the demo certificate`);
    this.refuseExisting(c.name);
    const now = new Date();
    const { certPem, key } = await generate(c.commonName, undefined, c.dnsNames, c.keyType, c.days, now);
    return info(this.insert(facts(c.name, parseChain(certPem, 'certificate'), c.keyType, now), key, false));
  }

  importPem(o: ImportOptions): CertificateInfo {
    const name = checkName(o.name);
    if (name === DEMO_NAME) throw new ValidationError('certificate name', name, `any name but "${DEMO_NAME}", which is reserved for the demo certificate`);
    const chain = parseChain(o.certPem, 'certificate file');
    const key = parseKey(o.keyPem, 'key file');
    const leaf = chain[0]!.x;
    if (!leaf.checkPrivateKey(key)) {
      const other = chain.findIndex((c) => c.x.checkPrivateKey(key));
      throw new ValidationError(
        'key file',
        `${describeKey(key)} key`,
        other > 0
          ? `the key of the first certificate in the certificate file; it matches certificate #${other + 1}: put the leaf first`
          : `the private key of the certificate's public key (${oneLine(leaf.subject)}, ${describeKey(leaf.publicKey)})`,
      );
    }
    for (let i = 1; i < chain.length; i++) {
      if (!chain[i - 1]!.x.checkIssued(chain[i]!.x)) {
        throw new ValidationError(
          'certificate file',
          `certificate #${i + 1} (${oneLine(chain[i]!.x.subject)})`,
          `the issuer of certificate #${i} (issued by ${oneLine(chain[i - 1]!.x.issuer)}): the leaf first, then each issuer in order`,
        );
      }
    }
    this.refuseExisting(name);
    return info(this.insert(facts(name, chain, describeKey(key), new Date()), key, false));
  }

  exportPem(name: string, o: { includeKey?: boolean } = {}): string {
    const c = this.require(name);
    return o.includeKey ? c.chainPem + this.readKey(name) : c.chainPem;
  }

  /** Deletes a certificate and its key file; refused while a setting uses it. */
  delete(name: string): CertificateInfo {
    const tx = this.db.transaction(() => {
      const c = this.require(name);
      const uses = this.usesOf(name);
      if (uses.length > 0) {
        const where = uses.map((u) => USE_TEXT[u].where).join(' and ');
        const fix = uses.map((u) => USE_TEXT[u].fix).join(', ');
        throw new ConfigError(`certificate ${name} is ${where}; choose another first (${fix})`);
      }
      this.db.prepare('DELETE FROM certificates WHERE name = ?').run(name);
      return c;
    });
    const c = tx.immediate();
    try {
      unlinkSync(this.keyPath(name));
    } catch {
      /* already gone: nothing to remove */
    }
    return c;
  }

  useForListener(name: string): CertificateInfo {
    const c = this.require(name);
    this.readKey(name);
    this.config.setGlobals({ listenerCertificate: name });
    return c;
  }

  /** `null` stops offering a client certificate. */
  useForClient(name: string | null): CertificateInfo | null {
    if (name === null) {
      this.config.setGlobals({ clientCertificate: null });
      return null;
    }
    const c = this.require(name);
    this.readKey(name);
    this.config.setGlobals({ clientCertificate: name });
    return c;
  }

  useForAdmin(name: string): CertificateInfo {
    const c = this.require(name);
    this.readKey(name);
    this.config.setGlobals({ adminCertificate: name });
    return c;
  }

  /** The certificate the administration page offers. */
  adminCredentials(): Credentials {
    return this.credentials(this.config.globals().adminCertificate ?? DEMO_NAME);
  }

  /** Key and chain of a certificate; throws ConfigError when either is missing. */
  credentials(name: string): Credentials {
    const c = this.require(name);
    return { name, keyPem: this.readKey(name), certPem: c.chainPem };
  }

  /** The certificate the relay listener offers for STARTTLS. */
  listenerCredentials(): Credentials {
    return this.credentials(this.config.globals().listenerCertificate ?? DEMO_NAME);
  }

  /** The outbound client certificate, or undefined when none is set. */
  clientCredentials(): Credentials | undefined {
    const name = this.config.globals().clientCertificate;
    return name ? this.credentials(name) : undefined;
  }

  /**
   * Creates the demo certificate (self-signed, CN "Postern Demo Certificate", its subject saying
   * it is not secure) when no certificate exists, or when the listener is set to the demo and it
   * does not exist. `dnsNames` (e.g. the gateway's host name) go into its subjectAltName; names
   * that are not valid host names are left out. Returns whether it created one.
   */
  async ensureDemo(o: { dnsNames?: string[] } = {}): Promise<boolean> {
    if (!this.demoNeeded()) return false;
    const names = [...new Set((o.dnsNames ?? []).map((d) => normaliseDomain(d)).filter((d): d is string => d !== null))];
    const now = new Date();
    const { certPem, key } = await generate(DEMO_COMMON_NAME, DEMO_ORGANISATION, names, DEMO_KEY_TYPE, DEMO_DAYS, now);
    const row = facts(DEMO_NAME, parseChain(certPem, 'certificate'), DEMO_KEY_TYPE, now);
    // Another process may have made it meanwhile: then that one stays.
    return this.insert(row, key, true) !== null;
  }

  /** True while no certificate but the demo exists, or the listener offers the demo. */
  onlyDemo(): boolean {
    const other = this.db.prepare('SELECT 1 FROM certificates WHERE name <> ? LIMIT 1').get(DEMO_NAME);
    return !other || (this.config.globals().listenerCertificate ?? DEMO_NAME) === DEMO_NAME;
  }

  // ---- internals ---------------------------------------------------------------------------

  private demoNeeded(): boolean {
    if (this.get(DEMO_NAME)) return false;
    const any = this.db.prepare('SELECT 1 FROM certificates LIMIT 1').get();
    const g = this.config.globals();
    return !any || (g.listenerCertificate ?? DEMO_NAME) === DEMO_NAME || (g.adminCertificate ?? DEMO_NAME) === DEMO_NAME;
  }

  private refuseExisting(name: string): void {
    if (this.get(name)) throw new ConfigError(`a certificate named ${name} already exists; delete it first or choose another name`);
  }

  private readKey(name: string): string {
    const path = this.keyPath(name);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new ConfigError(`the private key of certificate ${name} cannot be read from ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); import the certificate again`);
    }
  }

  /**
   * Writes the key file and the row in one IMMEDIATE transaction (so the existence check, the
   * file and the row cannot interleave with another process). With `ifAbsent`, an existing row
   * wins and null is returned; otherwise an existing row is an error.
   */
  private insert(row: Row, key: KeyObject, ifAbsent: true): Row | null;
  private insert(row: Row, key: KeyObject, ifAbsent: false): Row;
  private insert(row: Row, key: KeyObject, ifAbsent: boolean): Row | null {
    const tx = this.db.transaction((): Row | null => {
      if (this.db.prepare('SELECT 1 FROM certificates WHERE name = ?').get(row.name)) {
        if (ifAbsent) return null;
        throw new ConfigError(`a certificate named ${row.name} already exists; delete it first or choose another name`);
      }
      const path = this.writeKeyFile(row.name, key.export({ type: 'pkcs8', format: 'pem' }).toString());
      try {
        this.db
          .prepare(
            `INSERT INTO certificates (name, chain_pem, subject, issuer, sans, not_before, not_after, fingerprint, key_type, chain_length, created)
             VALUES (@name, @chain_pem, @subject, @issuer, @sans, @not_before, @not_after, @fingerprint, @key_type, @chain_length, @created)`,
          )
          .run(row);
      } catch (e) {
        unlinkSync(path);
        throw e;
      }
      return row;
    });
    return tx.immediate();
  }

  /** Key file with mode 0600 in a 0700 directory (config/secret-file.ts). */
  private writeKeyFile(name: string, pem: string): string {
    return writeSecretFile(this.keyDir, `${checkName(name)}.key`, pem);
  }

  /** For tests and diagnostics: whether the key file of `name` exists. */
  hasKeyFile(name: string): boolean {
    return existsSync(this.keyPath(name));
  }
}
