// Test certificate authority: issues EC P-256 / ECDSA-SHA256 certificates (root, leaves,
// self-signed, expired, not-yet-valid, CN-only) as PEM that Node's `tls` accepts.
import { KeyObject, X509Certificate, sign, webcrypto, randomBytes } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import * as asn1js from 'asn1js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface IssuedCert {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  /** Leaf + CA, suitable for a TLS server's `cert` option. */
  chainPem: string;
  der: Buffer;
}

export interface CertOptions {
  cn?: string;
  /** IDNs must be given in A-label form (e.g. `xn--bcher-kva.test`). */
  dnsNames?: string[];
  ipAddresses?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** The subjectAltName extension's value as raw DER (for malformed certificates); replaces dnsNames/ipAddresses. */
  rawSan?: Uint8Array;
  /** The subject as raw DER (a Name), replacing `cn`. */
  rawSubject?: Uint8Array;
}

// ---- DER by hand, for certificates no well-behaved library would write -----------------------

/** One DER element: tag, definite length (short or long form), content. */
export function tlv(tag: number, content: Uint8Array | number[]): Uint8Array {
  const body = Uint8Array.from(content);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Uint8Array.from([tag, ...len, ...body]);
}

const concat = (parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const CN_OID = [0x06, 0x03, 0x55, 0x04, 0x03];

/** String tags for CN values. */
export const STRING_TAG = { utf8: 0x0c, printable: 0x13, teletex: 0x14, ia5: 0x16, universal: 0x1c, bmp: 0x1e } as const;
/** GeneralName tags in a subjectAltName. */
export const SAN_TAG = { email: 0x81, dns: 0x82, uri: 0x86, ip: 0x87 } as const;

/** A Name of one RDN per CN value: each [string tag, raw bytes]. An empty list is an empty subject. */
export function rawName(cns: Array<[tag: number, bytes: Uint8Array | number[]]>): Uint8Array {
  return tlv(0x30, concat(cns.map(([tag, bytes]) => tlv(0x31, tlv(0x30, concat([Uint8Array.from(CN_OID), tlv(tag, bytes)]))))));
}

/** A subjectAltName value: each entry [GeneralName tag, raw bytes]. */
export function rawSan(entries: Array<[tag: number, bytes: Uint8Array | number[]]>): Uint8Array {
  return tlv(0x30, concat(entries.map(([tag, bytes]) => tlv(tag, bytes))));
}

export const ascii = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

type MetadataKey = string | symbol;
type MetadataTarget = object;
type ReflectWithMetadata = typeof Reflect & {
  getMetadata?: (key: MetadataKey, target: MetadataTarget, prop?: string | symbol) => unknown;
};

/**
 * @peculiar/x509 pulls in tsyringe, which refuses to load without a Reflect metadata
 * polyfill, and `reflect-metadata` is not a project dependency. tsyringe only needs
 * define/get(Own)Metadata for its decorators, so a WeakMap-backed subset suffices.
 * Installed only when no polyfill is present, so a real one always wins.
 */
function installReflectMetadataShim(): void {
  const R = Reflect as ReflectWithMetadata;
  if (typeof R.getMetadata === 'function') return;
  const store = new WeakMap<MetadataTarget, Map<string | symbol | undefined, Map<MetadataKey, unknown>>>();
  const own = (target: MetadataTarget, prop: string | symbol | undefined, create: boolean): Map<MetadataKey, unknown> | undefined => {
    let byProp = store.get(target);
    if (!byProp) {
      if (!create) return undefined;
      byProp = new Map();
      store.set(target, byProp);
    }
    let map = byProp.get(prop);
    if (!map && create) {
      map = new Map();
      byProp.set(prop, map);
    }
    return map;
  };
  const getOwnMetadata = (key: MetadataKey, target: MetadataTarget, prop?: string | symbol): unknown =>
    own(target, prop, false)?.get(key);
  const getMetadata = (key: MetadataKey, target: MetadataTarget, prop?: string | symbol): unknown => {
    // Inherited lookup along the prototype chain, as reflect-metadata does.
    for (let t: MetadataTarget | null = target; t !== null; t = Object.getPrototypeOf(t) as MetadataTarget | null) {
      const map = own(t, prop, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: MetadataKey, value: unknown, target: MetadataTarget, prop?: string | symbol): void => {
    own(target, prop, true)?.set(key, value);
  };
  const metadata = (key: MetadataKey, value: unknown) =>
    (target: MetadataTarget, prop?: string | symbol): void => defineMetadata(key, value, target, prop);
  Object.assign(Reflect, {
    getOwnMetadata,
    getMetadata,
    defineMetadata,
    metadata,
    hasMetadata: (key: MetadataKey, target: MetadataTarget, prop?: string | symbol) => getMetadata(key, target, prop) !== undefined,
    hasOwnMetadata: (key: MetadataKey, target: MetadataTarget, prop?: string | symbol) => own(target, prop, false)?.has(key) ?? false,
  });
}

let x509Loading: Promise<typeof X509> | undefined;

/** Loads @peculiar/x509 after the shim; a static import would be evaluated before it. */
function loadX509(): Promise<typeof X509> {
  if (!x509Loading) {
    installReflectMetadataShim();
    x509Loading = import('@peculiar/x509').then((mod) => {
      mod.cryptoProvider.set(webcrypto);
      return mod;
    });
  }
  return x509Loading;
}

const EC_ALG: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN_ALG: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
}

function keyToPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Positive 16-byte serial: high bit cleared so DER does not need a sign byte. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

function normalisePem(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

function validity(opts: CertOptions): Validity {
  const now = Date.now();
  return {
    notBefore: opts.notBefore ?? new Date(now - DAY_MS),
    notAfter: opts.notAfter ?? new Date(now + 365 * DAY_MS),
  };
}

async function leafExtensions(x509: typeof X509, opts: CertOptions, publicKey: webcrypto.CryptoKey, issuerPublicKey: webcrypto.CryptoKey): Promise<X509.Extension[]> {
  const exts: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey),
  ];
  const names: X509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value): X509.JsonGeneralName => ({ type: 'dns', value })),
    ...(opts.ipAddresses ?? []).map((value): X509.JsonGeneralName => ({ type: 'ip', value })),
  ];
  // No SAN at all when none requested: tests need CN-only certificates.
  if (opts.rawSan !== undefined) exts.push(new x509.Extension('2.5.29.17', false, opts.rawSan));
  else if (names.length > 0) exts.push(new x509.SubjectAlternativeNameExtension(names));
  return exts;
}

function leafCn(opts: CertOptions): string {
  return opts.cn ?? opts.dnsNames?.[0] ?? opts.ipAddresses?.[0] ?? 'localhost';
}

export class TestCA {
  readonly certPem: string;
  readonly keyPem: string;
  private readonly keys: webcrypto.CryptoKeyPair;
  private readonly name: string;

  private constructor(certPem: string, keys: webcrypto.CryptoKeyPair, name: string) {
    this.certPem = certPem;
    this.keys = keys;
    this.keyPem = keyToPem(keys.privateKey);
    this.name = name;
  }

  /** Self-signed root: CA:TRUE, keyCertSign + cRLSign. */
  static async create(name = 'Postern Test CA'): Promise<TestCA> {
    const x509 = await loadX509();
    const keys = await generateKeys();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: [{ CN: [name] }],
      notBefore: new Date(now - 2 * DAY_MS),
      notAfter: new Date(now + 10 * 365 * DAY_MS),
      signingAlgorithm: SIGN_ALG,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new TestCA(normalisePem(cert.toString('pem')), keys, name);
  }

  private issueRaw(opts: CertOptions): Promise<IssuedCert> {
    return assembleLeaf(this, opts);
  }

  /** Leaf signed by this CA: CA:FALSE, digitalSignature, serverAuth + clientAuth. */
  async issue(opts: CertOptions): Promise<IssuedCert> {
    if (opts.rawSan !== undefined || opts.rawSubject !== undefined) return this.issueRaw(opts);
    const x509 = await loadX509();
    const keys = await generateKeys();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: opts.rawSubject !== undefined ? new x509.Name(opts.rawSubject) : [{ CN: [leafCn(opts)] }],
      issuer: [{ CN: [this.name] }],
      ...validity(opts),
      signingAlgorithm: SIGN_ALG,
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      extensions: await leafExtensions(x509, opts, keys.publicKey, this.keys.publicKey),
    });
    const certPem = normalisePem(cert.toString('pem'));
    return { certPem, keyPem: keyToPem(keys.privateKey), chainPem: certPem + this.certPem, der: Buffer.from(cert.rawData) };
  }
}

/**
 * A leaf assembled octet by octet, so that a raw subject or subjectAltName reaches the
 * certificate exactly as given (a library re-encodes names it decodes: a UTF8String holding
 * 0xfc would come out as valid UTF-8 "ü"). Signed by the CA with ECDSA-SHA256.
 */
async function assembleLeaf(ca: { certPem: string; keyPem: string }, opts: CertOptions): Promise<IssuedCert> {
  const x509 = await loadX509();
  const keys = await generateKeys();
  const v = validity(opts);
  const caDer = new X509Certificate(ca.certPem).raw;
  const issuer = subjectDer(caDer); // the CA's subject, as the CA's own certificate encodes it
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const time = (d: Date): Uint8Array => tlv(0x17, ascii(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
  const ecdsaSha256 = tlv(0x30, tlv(0x06, [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
  const exts = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
  ].map((e): Uint8Array => new Uint8Array(e.rawData));
  if (opts.rawSan !== undefined) exts.push(tlv(0x30, concat([tlv(0x06, [0x55, 0x1d, 0x11]), tlv(0x04, opts.rawSan)])));
  else if ((opts.dnsNames ?? []).length > 0) exts.push(new Uint8Array(new x509.SubjectAlternativeNameExtension((opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value }))).rawData));
  const subject = opts.rawSubject ?? rawName([[STRING_TAG.utf8, ascii(leafCn(opts))]]);
  const tbs = tlv(0x30, concat([
    tlv(0xa0, tlv(0x02, [0x02])),
    tlv(0x02, Buffer.from(randomSerial(), 'hex')),
    ecdsaSha256,
    issuer,
    tlv(0x30, concat([time(v.notBefore), time(v.notAfter)])),
    subject,
    new Uint8Array(spki),
    tlv(0xa3, tlv(0x30, concat(exts))),
  ]));
  const signature = sign('sha256', tbs, ca.keyPem); // DER-encoded ECDSA signature
  const der = Buffer.from(tlv(0x30, concat([tbs, ecdsaSha256, tlv(0x03, [0x00, ...signature])])));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  return { certPem, keyPem: keyToPem(keys.privateKey), chainPem: certPem + ca.certPem, der };
}

/** The raw DER of a certificate's subject (the issuer name of what it signs), read with asn1js. */
function subjectDer(certDer: Buffer): Uint8Array {
  const cert = asn1js.fromBER(certDer).result as asn1js.Sequence;
  const tbs = (cert.valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
  const first = tbs[0]!;
  // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject, ...
  const offset = first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0 ? 1 : 0;
  return new Uint8Array(tbs[offset + 4]!.valueBeforeDecodeView);
}

/** Self-signed leaf (CA:FALSE), for DEPTH_ZERO_SELF_SIGNED_CERT cases. */
export async function selfSigned(opts: CertOptions): Promise<IssuedCert> {
  const x509 = await loadX509();
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [leafCn(opts)] }],
    ...validity(opts),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: await leafExtensions(x509, opts, keys.publicKey, keys.publicKey),
  });
  const certPem = normalisePem(cert.toString('pem'));
  return { certPem, keyPem: keyToPem(keys.privateKey), chainPem: certPem, der: Buffer.from(cert.rawData) };
}
