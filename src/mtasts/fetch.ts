/**
 * Fetching an MTA-STS policy (RFC 8461 §3.3): `GET https://mta-sts.<domain>/.well-known/mta-sts.txt`
 * over HTTPS with the certificate verified (PKIX) against the delivery trust store and the name
 * `mta-sts.<domain>` (sent as SNI and checked against the certificate), the host's addresses
 * found through Postern's own DNS client (never the system resolver), no redirects followed,
 * only `200` with `Content-Type: text/plain` accepted, at most 64 KiB, all within one timeout.
 *
 * Every failure is a StsFetchError with a reason an administrator understands and the TLS-RPT
 * result type it belongs to (RFC 8460 §4.3.2.2): `sts-policy-fetch-error`, `sts-webpki-invalid`
 * or `sts-policy-invalid`.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { LookupAddress, LookupOptions } from 'node:dns';
import type tls from 'node:tls';
import type { WireAddressLookup } from '../dns/wire.js';
import { describeChainError } from '../tls/verify.js';
import { VERSION } from '../version.js';
import { parseStsPolicy, type StsPolicy } from './policy.js';

export type StsFailureCategory = 'sts-policy-fetch-error' | 'sts-webpki-invalid' | 'sts-policy-invalid';

export interface StsFailure {
  category: StsFailureCategory;
  reason: string;
}

export class StsFetchError extends Error {
  constructor(
    readonly category: StsFailureCategory,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'StsFetchError';
  }

  toFailure(): StsFailure {
    return { category: this.category, reason: this.reason };
  }
}

export const POLICY_PATH = '/.well-known/mta-sts.txt';
/** RFC 8461 §3.3 suggests a 64 KiB limit on the policy's size. */
export const MAX_POLICY_BYTES = 64 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/** Addresses of a host, in the order to try them; rejects with a reason when there are none. */
export type AddressResolver = (host: string) => Promise<{ address: string; family: 4 | 6 }[]>;

/**
 * An AddressResolver over the DNS client's `addresses` (both families asked at once; IPv4
 * first, as the TLS stack will try them in order and fall back).
 */
export function addressResolver(dns: { addresses(host: string, family: 4 | 6): Promise<WireAddressLookup> }): AddressResolver {
  return async (host) => {
    const [v4, v6] = await Promise.all([dns.addresses(host, 4), dns.addresses(host, 6)]);
    const found: { address: string; family: 4 | 6 }[] = [];
    if (v4.kind === 'ok') for (const a of v4.addresses) found.push({ address: a, family: 4 });
    if (v6.kind === 'ok') for (const a of v6.addresses) found.push({ address: a, family: 6 });
    if (found.length > 0) return found;
    const temporary = [v4, v6].flatMap((r) => (r.kind === 'temporary' ? [r.reason] : []));
    throw new Error(temporary.length > 0 ? `the addresses of ${host} cannot be found (${temporary.join('; ')})` : `${host} has no address (no A or AAAA record)`);
  };
}

export interface FetchOptions {
  /** The trust store the certificate must chain to (delivery's: system roots and `certconfig` authorities). */
  secureContext: tls.SecureContext;
  resolve: AddressResolver;
  /** Default 443. */
  port?: number;
  /** For the whole fetch, DNS included (default 10 s). */
  timeoutMs?: number;
}

export interface FetchedPolicy {
  policy: StsPolicy;
  /** The policy file as served (UTF-8). */
  text: string;
}

/** The OpenSSL verification codes Node reports for a chain it does not trust. */
export const CHAIN_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD', 'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED', 'INVALID_CA',
  'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
]);

export function errorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const message = typeof err.message === 'string' ? err.message : String(e);
  return err.code && !message.includes(err.code) ? `${err.code}: ${message}` : message;
}

/** The media type of a Content-Type value, lower-case, without parameters. */
function mediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  return contentType.split(';')[0]!.trim().toLowerCase();
}

/**
 * Fetches and parses the policy of `domain` (lower-case A-label form). Resolves with the policy;
 * rejects with a StsFetchError (never another error).
 */
export async function fetchStsPolicy(domain: string, o: FetchOptions): Promise<FetchedPolicy> {
  const host = `mta-sts.${domain}`;
  const port = o.port ?? 443;
  const timeoutMs = o.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const url = `https://${host}${port === 443 ? '' : `:${port}`}${POLICY_PATH}`;
  const deadline = Date.now() + timeoutMs;
  const timeoutError = () => new StsFetchError('sts-policy-fetch-error', `${url}: no complete answer within ${timeoutMs / 1000} s`);

  let addresses: { address: string; family: 4 | 6 }[];
  let timer: NodeJS.Timeout | undefined;
  try {
    addresses = await Promise.race([
      o.resolve(host),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError()), timeoutMs);
      }),
    ]);
  } catch (e) {
    if (e instanceof StsFetchError) throw e;
    throw new StsFetchError('sts-policy-fetch-error', `${url}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  if (addresses.length === 0) throw new StsFetchError('sts-policy-fetch-error', `${url}: ${host} has no address`);

  const text = await new Promise<string>((resolve, reject) => {
    let settled = false;
    let overall: NodeJS.Timeout | undefined;
    const finish = (err: StsFetchError | null, body?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(body!);
      }
    };
    // The TLS stack connects to the addresses found above, and to nothing else.
    const lookup = (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
      if (hostname !== host) {
        callback(Object.assign(new Error(`unexpected look-up of ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
        return;
      }
      const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
      if (options.all) callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
      else if (wanted[0]) callback(null, wanted[0].address, wanted[0].family);
      else callback(Object.assign(new Error(`${host} has no IPv${String(options.family)} address`), { code: 'ENOTFOUND' }), '', 0);
    };
    // tls.connect takes `secureContext`; https passes its options on, though its type omits it.
    const options: https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext'> = {
      host,
      port,
      path: POLICY_PATH,
      method: 'GET',
      servername: host,
      secureContext: o.secureContext,
      rejectUnauthorized: true,
      agent: false, // the global agent pools by options that do not include secureContext
      lookup,
      headers: { 'User-Agent': `Postern/${VERSION}`, Accept: 'text/plain', Connection: 'close' },
    };
    const req = https.request(options);
    overall = setTimeout(() => finish(timeoutError()), Math.max(0, deadline - Date.now()));

    req.on('error', (e: NodeJS.ErrnoException) => {
      const socket = req.socket as tls.TLSSocket | null;
      const authError = socket && 'authorizationError' in socket ? socket.authorizationError : undefined;
      const code = e.code ?? (authError !== undefined ? String(authError) : undefined);
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        finish(new StsFetchError('sts-webpki-invalid', `${url}: the certificate is not valid for ${host} (${e.message})`));
      } else if ((code !== undefined && CHAIN_CODES.has(code)) || authError) {
        finish(new StsFetchError('sts-webpki-invalid', `${url}: ${describeChainError(code)}`));
      } else {
        finish(new StsFetchError('sts-policy-fetch-error', `${url}: ${errorText(e)}`));
      }
    });

    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        const to = res.headers.location;
        return finish(new StsFetchError('sts-policy-fetch-error', `${url}: HTTP ${status} redirect${to ? ` to ${to}` : ''} refused (RFC 8461 §3.3: redirects are not followed)`));
      }
      if (status !== 200) return finish(new StsFetchError('sts-policy-fetch-error', `${url}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} (only 200 is accepted)`));
      const type = mediaType(res.headers['content-type']);
      if (type !== 'text/plain') {
        return finish(new StsFetchError('sts-policy-fetch-error', `${url}: Content-Type ${type === undefined ? 'missing' : JSON.stringify(res.headers['content-type'])} (must be text/plain)`));
      }
      const tooBig = () => new StsFetchError('sts-policy-fetch-error', `${url}: the policy is larger than ${MAX_POLICY_BYTES} bytes`);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > MAX_POLICY_BYTES) return finish(tooBig());
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES) return finish(tooBig());
        chunks.push(chunk);
      });
      res.on('error', (e) => finish(new StsFetchError('sts-policy-fetch-error', `${url}: reading the policy: ${errorText(e)}`)));
      res.on('aborted', () => finish(new StsFetchError('sts-policy-fetch-error', `${url}: the connection closed before the whole policy arrived`)));
      res.on('end', () => {
        if (!res.complete) return finish(new StsFetchError('sts-policy-fetch-error', `${url}: the connection closed before the whole policy arrived`));
        try {
          finish(null, new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
        } catch {
          finish(new StsFetchError('sts-policy-invalid', `${url}: the policy is not valid UTF-8`));
        }
      });
    });
    req.end();
  });

  const parsed = parseStsPolicy(text);
  if (!parsed.ok) throw new StsFetchError('sts-policy-invalid', `${url}: invalid policy: ${parsed.reason}`);
  return { policy: parsed.policy, text };
}
