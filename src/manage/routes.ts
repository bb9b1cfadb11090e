/**
 * SMTP routes as a service (see manage/destinations.ts for the shape): host lists parsed and
 * validated here, changes made through ConfigStore, each audited with what changed.
 */
import { parseRouteHost } from '../config/options.js';
import type { ConfigStore, RouteHost } from '../config/store.js';
import { parseRouteKey } from '../controls/routes.js';
import type { Recorder } from './audit.js';

/** `HOST[:PORT][,HOST[:PORT]...]` in order of priority. */
export function parseRouteHosts(text: string): RouteHost[] {
  return text.split(',').map((h) => parseRouteHost(h));
}

export function routeHostsText(hosts: RouteHost[]): string {
  return hosts.map((h) => (h.port ? (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`) : h.host)).join(', ');
}

export class RouteService {
  constructor(
    private readonly store: ConfigStore,
    private readonly record: Recorder,
  ) {}

  /** `mode` new refuses a route that exists, edit one that does not. Returns the stored key. */
  put(domain: string, hosts: RouteHost[], mode: 'new' | 'edit'): string {
    const key = parseRouteKey(domain);
    const before = this.store.routes().get(key);
    const d = this.store.putRoute(key, hosts, mode);
    this.record(`route.${mode}`, d, { hosts: { from: before ? routeHostsText(before) : 'none', to: routeHostsText(hosts) } });
    return d;
  }

  delete(domain: string): string {
    const key = parseRouteKey(domain);
    const before = this.store.routes().get(key);
    const d = this.store.deleteRoute(key);
    this.record('route.delete', d, { hosts: { from: before ? routeHostsText(before) : 'none', to: 'none' } });
    return d;
  }
}
