/**
 * The one resolved policy a delivery attempt works from (DESIGN.md): the destination entry with
 * Default values filled in, its bounce profile, the SMTP route if any and the global TLS settings.
 * Resolved once per attempt and passed down; no lower layer reads configuration itself.
 */
import type { ResolvedEntry } from '../controls/types.js';
import { DEFAULT_PROFILE, type BounceProfile } from '../bounce/profile.js';
import type { ConfigSnapshot, GlobalSettings, RouteHost } from '../config/store.js';
import { routeFor } from '../controls/routes.js';

export interface DeliveryPolicy {
  domain: string;
  entry: ResolvedEntry;
  route?: RouteHost[];
  profile: BounceProfile;
  globals: GlobalSettings;
}

/**
 * `profiles` defaults to the snapshot's. An entry naming a profile that does not exist (possible
 * only in a table written before profiles were checked) gets the stored `Default` profile.
 */
export function resolvePolicy(snapshot: ConfigSnapshot, domain: string, profiles: Map<string, BounceProfile> = snapshot.profiles): DeliveryPolicy {
  const entry = snapshot.table.resolve(domain);
  const route = routeFor(snapshot.routes, domain);
  return {
    domain,
    entry,
    route,
    profile: profiles.get(entry.settings.bounceProfile) ?? profiles.get(DEFAULT_PROFILE.name) ?? DEFAULT_PROFILE,
    globals: snapshot.globals,
  };
}
