/**
 * The running gateway (`postern start`): the configuration store (reloaded within a second of
 * any change made by the CLI), the durable queue, the relay listener, the delivery engine and
 * the mail log, started and stopped together.
 */
import { join } from 'node:path';
import { ConfigStore, type ConfigSnapshot } from './config/store.js';
import type { GatewayOptions } from './config/options.js';
import { DeliveryEngine } from './delivery/engine.js';
import { DnsClient } from './dns/resolver.js';
import { MailLog } from './observe/maillog.js';
import { IdSequence } from './queue/ids.js';
import { QueueStore } from './queue/store.js';
import { RelayListener } from './smtp/listener.js';
import { NetworkList } from './smtp/networks.js';

/** How long `queue list --state delivered|bounced` can still show a finished recipient. */
export const HISTORY_DAYS = 7;

export class Gateway {
  readonly config: ConfigStore;
  readonly queue: QueueStore;
  readonly log: MailLog;
  readonly engine: DeliveryEngine;
  private readonly listener: RelayListener;
  private snapshot: ConfigSnapshot;
  private version: number;
  private reloadTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  address: { address: string; port: number } | null = null;

  constructor(readonly options: GatewayOptions) {
    this.config = ConfigStore.open(options.dataDir);
    this.queue = QueueStore.open(options.dataDir);
    this.log = new MailLog(options.dataDir);
    this.snapshot = this.config.snapshot();
    this.version = this.config.dataVersion();
    this.engine = new DeliveryEngine({
      queue: this.queue,
      config: () => this.snapshot,
      dns: new DnsClient({ servers: options.dnsServers }),
      log: this.log,
      hostname: options.hostname,
      smtpPort: options.smtpPort,
      timeouts: options.timeouts,
      pollMs: options.pollMs,
    });
    const icids = new IdSequence(this.queue, 'icid');
    this.listener = new RelayListener({
      host: options.listen.host,
      port: options.listen.port,
      hostname: options.hostname,
      allowed: new NetworkList(options.allowedNetworks),
      queue: this.queue,
      log: this.log,
      maxMessageSize: options.maxMessageSize,
      maxRecipients: options.maxRecipients,
      onAccepted: () => this.engine.wake(),
      nextIcid: () => icids.take(),
    });
  }

  get logDir(): string {
    return join(this.options.dataDir, 'logs');
  }

  async start(): Promise<{ address: string; port: number }> {
    this.address = await this.listener.listen();
    this.engine.start();
    this.reloadTimer = setInterval(() => this.reloadIfChanged(), this.options.reloadMs);
    this.pruneTimer = setInterval(() => this.queue.pruneHistory(Date.now() - HISTORY_DAYS * 86_400_000), 3_600_000);
    return this.address;
  }

  /** Picks up changes committed by other processes (the CLI) without a restart. */
  reloadIfChanged(): void {
    const v = this.config.dataVersion();
    if (v === this.version) return;
    this.version = v;
    this.snapshot = this.config.snapshot();
    this.log.write({ event: 'config-reloaded', detail: `${this.snapshot.table.size} entries, ${this.snapshot.routes.size} routes` });
    this.engine.wake();
  }

  async stop(): Promise<void> {
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.listener.close();
    await this.engine.stop(5000);
    this.queue.close();
    this.config.close();
    await this.log.close();
  }
}
