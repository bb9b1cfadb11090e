// Test certificate authority: issues EC P-256 / ECDSA-SHA256 certificates (root, leaves,
// self-signed, expired, not-yet-valid, CN-only) as PEM that Node's `tls` accepts.
import { KeyObject, webcrypto, randomBytes } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

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
}

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
  if (names.length > 0) exts.push(new x509.SubjectAlternativeNameExtension(names));
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

  /** Leaf signed by this CA: CA:FALSE, digitalSignature, serverAuth + clientAuth. */
  async issue(opts: CertOptions): Promise<IssuedCert> {
    const x509 = await loadX509();
    const keys = await generateKeys();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [leafCn(opts)] }],
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
