/**
 * Sending a TLS report to an `https:` rua destination (RFC 8460 §5.3.1): one POST of the gzipped
 * report with `Content-Type: application/tlsrpt+gzip`, done the way Postern fetches MTA-STS
 * policies (mtasts/fetch.ts): the certificate verified against the URL's host name and the
 * delivery trust store, the host's addresses from Postern's own DNS client, no redirect followed,
 * one timeout for the whole of it.
 *
 * postReport(url, gz, o) resolves with a PostOutcome, never rejects. 2xx is ok. A 4xx other
 * than 408/429, a redirect or an unusable URL is permanent: asking again gets the same answer.
 * 5xx, 408, 429, DNS, network, TLS and timeout failures are temporary; a certificate failure
 * too (the collector may fix its certificate), with the problem named in the reason. Every
 * reason begins with the URL.
 *
 * retryDelayMs(attempt) / nextTryAt(...) / GIVE_UP_AFTER_MS: when to try a failed https
 * delivery again (pure).
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type tls from 'node:tls';
import { CHAIN_CODES, errorText, type AddressResolver } from '../mtasts/fetch.js';
import { describeChainError } from '../tls/verify.js';
import { VERSION } from '../version.js';

export type PostOutcome = { ok: true; status: number } | { ok: false; permanent: boolean; reason: string };

export interface PostOptions {
  /** The trust store the collector's certificate must chain to (delivery's). */
  secureContext: tls.SecureContext;
  resolve: AddressResolver;
  /** For the whole post, DNS included (default 30 s). */
  timeoutMs?: number;
}

export const DEFAULT_POST_TIMEOUT_MS = 30_000;

const temporary = (reason: string): PostOutcome => ({ ok: false, permanent: false, reason });
const permanent = (reason: string): PostOutcome => ({ ok: false, permanent: true, reason });

/** The outcome of an HTTP status (pure). */
export function statusOutcome(url: string, status: number, statusMessage?: string): PostOutcome {
  const said = `${url}: HTTP ${status}${statusMessage ? ` ${statusMessage}` : ''}`;
  if (status >= 200 && status < 300) return { ok: true, status };
  if (status >= 300 && status < 400) return permanent(`${said}: redirect refused (redirects are not followed)`);
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return permanent(said);
  return temporary(said);
}

export async function postReport(url: string, gz: Buffer, o: PostOptions): Promise<PostOutcome> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return permanent(`${url}: not a URL`);
  }
  if (target.protocol !== 'https:') return permanent(`${url}: not an https: URL`);
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(host);
  const timeoutMs = o.timeoutMs ?? DEFAULT_POST_TIMEOUT_MS;

  return new Promise<PostOutcome>((resolve) => {
    let settled = false;
    let req: ReturnType<typeof https.request> | undefined;
    const finish = (outcome: PostOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req?.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(temporary(`${url}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);

    const addresses: Promise<{ address: string; family: 4 | 6 }[]> = literal ? Promise.resolve([{ address: host, family: literal as 4 | 6 }]) : o.resolve(host);
    addresses.then(
      (found) => {
        if (settled) return;
        if (found.length === 0) return finish(temporary(`${url}: ${host} has no address`));
        req = send(target, host, literal !== 0, found, gz, o.secureContext);
        req.on('error', (e: NodeJS.ErrnoException) => finish(classifyError(url, host, req, e)));
        req.on('response', (res: IncomingMessage) => {
          res.on('error', () => undefined); // destroyed by finish(): the body is not wanted
          res.resume();
          finish(statusOutcome(url, res.statusCode ?? 0, res.statusMessage));
        });
        req.end(gz);
      },
      (e: unknown) => finish(temporary(`${url}: ${e instanceof Error ? e.message : String(e)}`)),
    );
  });
}

function send(target: URL, host: string, literal: boolean, addresses: { address: string; family: 4 | 6 }[], gz: Buffer, secureContext: tls.SecureContext): ReturnType<typeof https.request> {
  // The TLS stack connects to the addresses found above, and to nothing else.
  const lookup = (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    const wanted = hostname !== host ? [] : options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    if (wanted.length === 0) callback(Object.assign(new Error(`unexpected look-up of ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
    else if (options.all) callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
    else callback(null, wanted[0]!.address, wanted[0]!.family);
  };
  // tls.connect takes `secureContext`; https passes its options on, though its type omits it.
  const options: https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext'> = {
    host,
    port: target.port === '' ? 443 : Number(target.port),
    path: `${target.pathname}${target.search}`,
    method: 'POST',
    ...(literal ? {} : { servername: host }),
    secureContext,
    rejectUnauthorized: true,
    agent: false, // the global agent pools by options that do not include secureContext
    lookup,
    headers: { 'User-Agent': `Postern/${VERSION}`, 'Content-Type': 'application/tlsrpt+gzip', 'Content-Length': gz.length, Connection: 'close' },
  };
  return https.request(options);
}

function classifyError(url: string, host: string, req: ReturnType<typeof https.request> | undefined, e: NodeJS.ErrnoException): PostOutcome {
  const socket = req?.socket as tls.TLSSocket | null | undefined;
  const authError = socket && 'authorizationError' in socket ? socket.authorizationError : undefined;
  const code = e.code ?? (authError !== undefined ? String(authError) : undefined);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return temporary(`${url}: the certificate is not valid for ${host} (${e.message})`);
  if ((code !== undefined && CHAIN_CODES.has(code)) || authError) return temporary(`${url}: ${describeChainError(code)}`);
  return temporary(`${url}: ${errorText(e)}`);
}

// ---- retries ------------------------------------------------------------------------------
//
// RFC 8460 §5.4 asks a submitter whose https delivery failed to try again with backoff. The
// first retry comes 5 minutes after the first failure, each later one waits twice as long, at
// most 4 hours; 24 hours after the first try the report is given up (by then the next day's
// report is due, and a collector down that long will not miss one day more).

export const FIRST_RETRY_MS = 5 * 60_000;
export const MAX_RETRY_DELAY_MS = 4 * 3_600_000;
export const GIVE_UP_AFTER_MS = 24 * 3_600_000;

/** The wait before retry number `attempt` (1 = the first retry, after the first failure). */
export function retryDelayMs(attempt: number): number {
  const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  return Math.min(MAX_RETRY_DELAY_MS, FIRST_RETRY_MS * 2 ** Math.min(n - 1, 20));
}

/**
 * When to try again after the `attempt`-th failure at `now`, for a report first tried at
 * `firstTryAt`; null when that would be past GIVE_UP_AFTER_MS (give the report up).
 */
export function nextTryAt(firstTryAt: number, now: number, attempt: number): number | null {
  const at = now + retryDelayMs(attempt);
  return at - firstTryAt > GIVE_UP_AFTER_MS ? null : at;
}
