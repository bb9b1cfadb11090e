/**
 * Options of `postern start`: built-in defaults, then a JSON config file, then command-line
 * flags, each overriding the one before. Every option is checked here so that a bad value
 * stops start-up with a message naming it, before anything listens.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { hostname as osHostname } from 'node:os';
import { ValidationError } from '../controls/validate.js';
import { parseHostPort } from './host-port.js';
import { RFC5321_TIMEOUTS, type SmtpTimeouts } from '../smtp/client.js';
import { LOOPBACK_NETWORKS } from '../smtp/networks.js';
import { normaliseDomain } from '../tls/names.js';
import { parseClusterUrl, parseNodeName, type Membership } from '../cluster/membership.js';
import { ClusterSecret } from '../cluster/secrets.js';

export interface GatewayOptions {
  dataDir: string;
  listen: { host: string; port: number };
  dnsServers: string[];
  /** Validating resolvers whose AD bit is believed (SPEC §12); when given, every look-up goes to them. */
  dnssecResolvers: string[];
  /** Port of receiving domains' MTA-STS policy hosts (443; tests use another, as --smtp-port). */
  httpsPort: number;
  smtpPort: number;
  hostname: string;
  allowedNetworks: string[];
  maxMessageSize: number;
  maxRecipients: number;
  /** Seconds; RFC 5321 values by default. */
  timeouts: SmtpTimeouts;
  /** How often the running gateway looks for configuration changes (ms). */
  reloadMs: number;
  pollMs: number;
  /** The listener disconnects a client idle this long (ms); RFC 5321 §4.5.3.2.7: at least 5 minutes. */
  idleTimeoutMs: number;
  /** Where the text mail log goes: mail.log (file), standard output, or syslog. mail.jsonl is always written. */
  logTo: 'file' | 'stdout' | 'syslog';
  /** For `logTo: 'syslog'`: a remote syslog HOST:PORT over UDP; the local /dev/log when absent. */
  syslog?: { host: string; port: number };
  /** The web administration page and API (HTTPS); null = off. */
  admin: { host: string; port: number } | null;
  /** Idle page sessions end after this long (ms). */
  adminSessionIdleMs: number;
  /** Client networks that may read /metrics without an API token (none by default). */
  metricsAllow: string[];
  /** How often the delivery and queue alert thresholds are checked (ms). */
  alertCheckMs: number;
  /** The public listener (local domains only; bounce verification); null = off. */
  publicListen: { host: string; port: number } | null;
  /** Cluster membership (SPEC §12); null = the embedded single node. */
  cluster: Membership | null;
  /** TLS reports (RFC 8460): delay after midnight UTC before they go out (ms; default random, up to 30 min). Tests set it. */
  tlsRptDelayMs?: number;
  /** How often the TLS report sender looks for work (ms; default 60 s). Tests set it. */
  tlsRptCheckMs?: number;
  /** Open connections above which a finished connection is not kept for reuse (default 500). Tests set it. */
  idleKeptBelow?: number;
  /** Delivery connections open at most, over every destination (Postfix's default_process_limit). */
  maxConnections: number;
  /** The delivery engine's wall clock (retry times, bounce deadlines); tests step it. Default Date.now. */
  deliveryClock?: () => number;
}

/** Keys accepted in the config file (JSON). */
export interface ConfigFile {
  dataDir?: string;
  listen?: string;
  dnsServers?: string[];
  dnssecResolvers?: string[];
  httpsPort?: number;
  smtpPort?: number;
  hostname?: string;
  allowedNetworks?: string[];
  maxMessageSize?: number;
  maxRecipients?: number;
  timeouts?: Partial<Record<keyof SmtpTimeouts, number>>;
  logTo?: string;
  syslog?: string;
  /** Seconds. */
  idleTimeout?: number;
  /** HOST:PORT of the administration page, or `off`. */
  admin?: string;
  /** Seconds an idle page session lasts. */
  adminSessionIdle?: number;
  metricsAllow?: string[];
  /** Seconds between checks of the delivery and queue alert thresholds (default 60). */
  alertCheckSeconds?: number;
  /** HOST:PORT of the public listener, or `off` (the default). */
  publicListen?: string;
  /** Redis URL of the cluster, or `off`. */
  cluster?: string;
  nodeName?: string;
  /** Seconds. */
  clusterLeaseTtl?: number;
  /** Path of the file whose secret seals the shared certificates and keys, or `none`. */
  clusterSecretFile?: string;
  /** Delivery connections open at most, over every destination (default 500). */
  maxConnections?: number;
}

export const DEFAULT_OPTIONS: GatewayOptions = {
  dataDir: './postern-data',
  listen: { host: '127.0.0.1', port: 2525 },
  dnsServers: [],
  dnssecResolvers: [],
  httpsPort: 443,
  smtpPort: 25,
  hostname: osHostname(),
  allowedNetworks: LOOPBACK_NETWORKS,
  maxMessageSize: 50 * 1024 * 1024,
  maxRecipients: 1000,
  timeouts: { ...RFC5321_TIMEOUTS },
  reloadMs: 500,
  pollMs: 1000,
  logTo: 'file',
  idleTimeoutMs: 300_000,
  admin: { host: '127.0.0.1', port: 8443 },
  adminSessionIdleMs: 1_800_000,
  metricsAllow: [],
  alertCheckMs: 60_000,
  publicListen: null,
  cluster: null,
  maxConnections: 500,
};

export { parseHostPort } from './host-port.js';

/** Resolvers as `HOST:PORT` (`[V6]:PORT`), port 53 unless given. */
function resolverList(field: string, list: string[]): string[] {
  return list.map((s) => {
    const hp = parseHostPort(field, s, 53);
    return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
  });
}

/** A route host: `host`, `host:port`, `[v6]:port`, a bare IPv6 address, or an IPv4 address. */
export function parseRouteHost(text: string): { host: string; port?: number } {
  const t = text.trim();
  if (net.isIP(t)) return { host: t };
  const hp = t.startsWith('[') || t.includes(':') ? parseHostPort('route host', t) : { host: t, port: undefined };
  // The route host is a reference identity of the Hosted check: the same strict name rule as
  // every other name (A-label form, nothing mapped), or an address.
  const host = net.isIP(hp.host) ? hp.host.toLowerCase() : normaliseDomain(hp.host);
  if (host === null) {
    throw new ValidationError('route host', text, 'HOST[:PORT] with a host name or address');
  }
  return hp.port === undefined ? { host } : { host, port: hp.port };
}

function port(field: string, v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return port(field, Number(v));
  throw new ValidationError(field, v, 'a port number from 1 to 65535');
}

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as ConfigFile;
  } catch (e) {
    throw new Error(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export function buildOptions(file: ConfigFile, flags: ConfigFile): GatewayOptions {
  const o: GatewayOptions = { ...DEFAULT_OPTIONS, timeouts: { ...DEFAULT_OPTIONS.timeouts } };
  const known = new Set(['dataDir', 'listen', 'dnsServers', 'dnssecResolvers', 'httpsPort', 'smtpPort', 'hostname', 'allowedNetworks', 'maxMessageSize', 'maxRecipients', 'timeouts', 'logTo', 'syslog', 'idleTimeout', 'admin', 'adminSessionIdle', 'metricsAllow', 'alertCheckSeconds', 'publicListen', 'cluster', 'nodeName', 'clusterLeaseTtl', 'clusterSecretFile', 'maxConnections']);
  for (const k of Object.keys(file)) if (!known.has(k)) throw new ValidationError('config file key', k, [...known].join(', '));
  for (const src of [file, flags]) {
    if (src.dataDir !== undefined) o.dataDir = src.dataDir;
    if (src.listen !== undefined) o.listen = parseHostPort('listen', src.listen, undefined, true);
    if (src.dnsServers !== undefined && src.dnsServers.length > 0) o.dnsServers = resolverList('dns-server', src.dnsServers);
    if (src.dnssecResolvers !== undefined && src.dnssecResolvers.length > 0) o.dnssecResolvers = resolverList('dnssec-resolver', src.dnssecResolvers);
    if (src.smtpPort !== undefined) o.smtpPort = port('smtp-port', src.smtpPort);
    if (src.httpsPort !== undefined) o.httpsPort = port('https-port', src.httpsPort);
    if (src.hostname !== undefined) {
      if (!/^[A-Za-z0-9.-]{1,253}$/.test(src.hostname)) throw new ValidationError('hostname', src.hostname, 'a DNS host name');
      o.hostname = src.hostname;
    }
    if (src.allowedNetworks !== undefined) o.allowedNetworks = src.allowedNetworks;
    if (src.logTo !== undefined) {
      if (src.logTo !== 'file' && src.logTo !== 'stdout' && src.logTo !== 'syslog') throw new ValidationError('log-to', src.logTo, 'file, stdout or syslog');
      o.logTo = src.logTo;
    }
    if (src.syslog !== undefined) o.syslog = parseHostPort('syslog', src.syslog, 514);
    if (src.idleTimeout !== undefined) {
      const n = Number(src.idleTimeout);
      if (!Number.isFinite(n) || n < 1 || n > 86_400) throw new ValidationError('idle-timeout', src.idleTimeout, 'a number of seconds from 1 to 86400');
      o.idleTimeoutMs = Math.round(n * 1000);
    }
    if (src.admin !== undefined) o.admin = src.admin === 'off' ? null : parseHostPort('admin', src.admin, undefined, true);
    if (src.adminSessionIdle !== undefined) {
      const n = Number(src.adminSessionIdle);
      if (!Number.isFinite(n) || n < 1 || n > 86_400) throw new ValidationError('admin-session-idle', src.adminSessionIdle, 'a number of seconds from 1 to 86400');
      o.adminSessionIdleMs = Math.round(n * 1000);
    }
    if (src.metricsAllow !== undefined) o.metricsAllow = src.metricsAllow;
    if (src.publicListen !== undefined) o.publicListen = src.publicListen === 'off' ? null : parseHostPort('public-listen', src.publicListen, undefined, true);
    if (src.alertCheckSeconds !== undefined) {
      const n = Number(src.alertCheckSeconds);
      if (!Number.isFinite(n) || n < 0.1 || n > 3600) throw new ValidationError('alertCheckSeconds', src.alertCheckSeconds, 'a number of seconds from 0.1 to 3600');
      o.alertCheckMs = Math.round(n * 1000);
    }
    if (src.cluster !== undefined) {
      if (src.cluster === 'off') o.cluster = null;
      else o.cluster = { url: parseClusterUrl(src.cluster), node: o.cluster?.node ?? '', leaseTtlSeconds: o.cluster?.leaseTtlSeconds ?? 10, ...(o.cluster?.secretFile ? { secretFile: o.cluster.secretFile } : {}) };
    }
    if (src.clusterSecretFile !== undefined && o.cluster) {
      if (src.clusterSecretFile === 'none') delete o.cluster.secretFile;
      else {
        // Checked now (readable, owner only, long enough), so a bad file stops the start.
        ClusterSecret.fromFile(src.clusterSecretFile);
        o.cluster.secretFile = resolvePath(src.clusterSecretFile);
      }
    }
    if (src.nodeName !== undefined && o.cluster) o.cluster.node = parseNodeName(src.nodeName);
    if (src.clusterLeaseTtl !== undefined && o.cluster) {
      const n = Number(src.clusterLeaseTtl);
      if (!Number.isInteger(n) || n < 2 || n > 300) throw new ValidationError('cluster-lease-ttl', src.clusterLeaseTtl, 'an integer number of seconds from 2 to 300');
      o.cluster.leaseTtlSeconds = n;
    }
    if (src.maxConnections !== undefined) {
      const n = Number(src.maxConnections);
      if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new ValidationError('max-connections', src.maxConnections, 'an integer from 1 to 100000');
      o.maxConnections = n;
    }
    if (src.maxMessageSize !== undefined) o.maxMessageSize = src.maxMessageSize;
    if (src.maxRecipients !== undefined) o.maxRecipients = src.maxRecipients;
    for (const [k, v] of Object.entries(src.timeouts ?? {})) {
      if (!(k in o.timeouts)) throw new ValidationError('timeouts key', k, Object.keys(o.timeouts).join(', '));
      if (typeof v !== 'number' || !(v > 0)) throw new ValidationError(`timeouts.${k}`, v, 'a positive number of seconds');
      o.timeouts[k as keyof SmtpTimeouts] = v * 1000;
    }
  }
  if (o.cluster && o.cluster.node === '') throw new ValidationError('node-name', '', 'a node name with --cluster (each node of a cluster has its own, e.g. --node-name gw1)');
  return o;
}
