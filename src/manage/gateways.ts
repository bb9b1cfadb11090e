/**
 * Virtual gateways as a service (see manage/destinations.ts for the shape): a gateway's address
 * must be one this machine has (checked by binding to it), changes go through GatewayStore and
 * are audited with what changed.
 */
import net from 'node:net';
import { GatewayStore, type VirtualGateway } from '../config/gateways.js';
import { isLocalAddress } from '../config/local-address.js';
import type { ConfigStore } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import type { Recorder } from './audit.js';

export class GatewayService {
  private readonly gateways: GatewayStore;

  constructor(
    store: ConfigStore,
    private readonly record: Recorder,
  ) {
    this.gateways = new GatewayStore(store);
  }

  async put(g: VirtualGateway): Promise<VirtualGateway> {
    if (net.isIP(g.address) !== 0 && !(await isLocalAddress(g.address))) {
      throw new ValidationError('gateway address', g.address, 'an IPv4 or IPv6 address of this machine (it is not configured here)');
    }
    const before = this.gateways.list().find((x) => x.name === g.name);
    const saved = this.gateways.put(g);
    this.record(before ? 'gateway.edit' : 'gateway.new', g.name, { from: before ?? 'none', to: saved });
    return saved;
  }

  delete(name: string): void {
    this.gateways.delete(name);
    this.record('gateway.delete', name);
  }

  assign(senderDomain: string, gateway: string): string {
    const before = this.gateways.assignments();
    const d = this.gateways.assign(senderDomain, gateway);
    this.record('gateway.assign', d, { gateway: { from: before.get(d) ?? 'none', to: gateway } });
    return d;
  }

  unassign(senderDomain: string): void {
    this.gateways.unassign(senderDomain);
    this.record('gateway.unassign', senderDomain);
  }
}
