/**
 * `HOST:PORT` as administrators write it, for listeners, routes and resolvers alike.
 */
import net from 'node:net';
import { ValidationError } from '../controls/validate.js';

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/**
 * `host:port`, `[ipv6]:port`, or (when `defaultPort` is given) `host`, `[ipv6]` or a bare IPv6
 * address. The host must be a host name, an IPv4 address or (bracketed) an IPv6 address.
 */
export function parseHostPort(field: string, value: string, defaultPort?: number, allowAnyPort = false): { host: string; port: number } {
  const fail = (): never => {
    throw new ValidationError(field, value, 'HOST:PORT with a port from 1 to 65535 (IPv6 as [ADDR]:PORT)');
  };
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]*)\](?::(\d+))?$/.exec(value);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
    if (!net.isIPv6(host)) fail();
  } else if (net.isIPv6(value)) {
    host = value;
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(value);
    if (!m) return fail();
    host = m[1]!;
    portText = m[2];
    if (!net.isIPv4(host) && !HOST_NAME.test(host)) fail();
  }
  const port = portText !== undefined ? Number(portText) : defaultPort;
  if (port === undefined || !Number.isInteger(port) || port < (allowAnyPort ? 0 : 1) || port > 65535) return fail();
  return { host, port };
}

