/**
 * SMTP route names and lookup (the appliance's `smtproutes`). Pure.
 *
 * A route is keyed like a destination entry: `example.com` (that domain), `.example.com` (every
 * subdomain of it, not example.com itself) or `ALL`, the appliance's default route, which sends
 * everything that has no more specific route to the hosts it names (a smarthost).
 *
 * parseRouteKey(input): the stored key — `ALL`, or a destination name in comparison form
 *   (controls/names.ts) — or a ValidationError naming the value.
 * routeFor(routes, domain): the hosts for a recipient domain: the exact route, else the longest
 *   matching `.suffix` route, else `ALL`, else none. Costs one map look-up per label.
 * routeKeyFor(routes, domain): the key of that route (what `explain` shows).
 */
import { mostSpecificName, parseDestinationName } from './names.js';
import { ValidationError } from './validate.js';

export const DEFAULT_ROUTE = 'ALL';

export function parseRouteKey(input: string): string {
  if (input.trim().toUpperCase() === DEFAULT_ROUTE) return DEFAULT_ROUTE;
  try {
    return parseDestinationName(input);
  } catch {
    throw new ValidationError('route domain', input, 'a domain (example.com), a subdomain pattern (.example.com) or ALL (the default route)');
  }
}

export function routeFor<T>(routes: Map<string, T>, domain: string): T | undefined {
  return routes.get(routeKeyFor(routes, domain));
}

/** The key of the route that governs `domain`: the exact one, the longest `.suffix`, or ALL. */
export function routeKeyFor(routes: ReadonlyMap<string, unknown>, domain: string): string {
  return mostSpecificName(domain, (k) => routes.has(k)) ?? DEFAULT_ROUTE;
}
