/**
 * The public listener's configuration (SPEC §6) as a service: the organisation's local domains
 * (`postern localdomains`) and the listener's own limits (`postern listenerconfig public`),
 * checked here, stored in config.db, each change audited.
 */
import { LocalDomainStore } from '../config/local-domains.js';
import type { ConfigStore, GlobalSettings } from '../config/store.js';
import { parseIntegerIn } from '../controls/validate.js';
import type { Recorder } from './audit.js';
import { changeGlobals } from './destinations.js';

export interface PublicLimitsInput {
  connectionsPerClient?: string | number;
  /** Bytes, or `default` (the private listener's). */
  maxMessageSize?: string | number;
  /** Or `default` (the private listener's). */
  maxRecipients?: string | number;
}

export interface PublicLimits {
  connectionsPerClient: number;
  maxMessageSize: number | null;
  maxRecipients: number | null;
}

export const publicLimits = (g: GlobalSettings): PublicLimits => ({ connectionsPerClient: g.publicConnectionsPerClient, maxMessageSize: g.publicMaxMessageSize, maxRecipients: g.publicMaxRecipients });

const isDefault = (v: string | number): boolean => typeof v === 'string' && v.trim().toLowerCase() === 'default';
const int = (v: string | number) => (typeof v === 'string' ? v.trim() : v);

export function checkPublicLimitsInput(input: PublicLimitsInput): Partial<GlobalSettings> {
  const c: Partial<GlobalSettings> = {};
  if (input.connectionsPerClient !== undefined) c.publicConnectionsPerClient = parseIntegerIn('connections per client', int(input.connectionsPerClient), 1, 10_000);
  if (input.maxMessageSize !== undefined) c.publicMaxMessageSize = isDefault(input.maxMessageSize) ? null : parseIntegerIn('maximum message size', int(input.maxMessageSize), 1024, 1_073_741_824);
  if (input.maxRecipients !== undefined) c.publicMaxRecipients = isDefault(input.maxRecipients) ? null : parseIntegerIn('maximum recipients', int(input.maxRecipients), 1, 100_000);
  return c;
}

export class PublicListenerService {
  private readonly domains: LocalDomainStore;

  constructor(
    private readonly config: ConfigStore,
    private readonly record: Recorder,
  ) {
    this.domains = new LocalDomainStore(config);
  }

  localDomains(): string[] {
    return this.domains.list();
  }

  addLocalDomain(name: string): string {
    const n = this.domains.add(name);
    this.record('localdomain.add', n);
    return n;
  }

  deleteLocalDomain(name: string): string {
    const n = this.domains.delete(name);
    this.record('localdomain.delete', n);
    return n;
  }

  limits(): PublicLimits {
    return publicLimits(this.config.globals());
  }

  setLimits(input: PublicLimitsInput): PublicLimits {
    return publicLimits(changeGlobals(this.config, this.record, { action: 'listener.public', target: 'public listener', view: publicLimits }, checkPublicLimitsInput(input)));
  }
}
