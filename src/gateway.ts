/**
 * The running gateway (`postern start`): the configuration store (reloaded within a second of
 * any change made by the CLI), the durable queue, the relay listener, the delivery engine and
 * the mail log, started and stopped together.
 */
import { join } from 'node:path';
import { CertificateStore } from './config/certificates.js';
import { prepareDataDir } from './config/datadir.js';
import { GatewayStore } from './config/gateways.js';
import { acquireGatewayLock, type GatewayLock } from './config/lock.js';
import { ConfigStore, type ConfigSnapshot } from './config/store.js';
import type { GatewayOptions } from './config/options.js';
import { DeliveryEngine } from './delivery/engine.js';
import { deliveryDns } from './dns/client.js';
import { MtaStsResolver } from './mtasts/resolver.js';
import { MtaStsStore } from './mtasts/store.js';
import { TlsRptCounter, TlsRptStore } from './observe/tlsrpt.js';
import { networkDeps, TlsRptSender } from './tlsrpt/sender.js';
import { askTlsRptSessions, claimTlsRpt } from './cluster/reports.js';
import { TlsRptSendStore } from './tlsrpt/sends.js';
import { effectiveTlsRptSettings } from './manage/tlsrpt-settings.js';
import { secureContextFor } from './tls/trust.js';
import { Conditions, QUEUE_STORAGE } from './observe/conditions.js';
import { Checkpointer, CHECKPOINT_EVERY_MS } from './queue/checkpointer.js';
import { MailLog, StdoutSink } from './observe/maillog.js';
import { SyslogSink } from './observe/syslog.js';
import { TlsCounter, TlsReportStore } from './observe/tls-report.js';
import { Alerter } from './observe/alerter.js';
import { Metrics } from './observe/metrics.js';
import { AlertStore } from './config/alerts.js';
import { BvKeyStore, tagKeys } from './config/bounce-verification.js';
import { LocalDomainStore } from './config/local-domains.js';
import { VERSION } from './version.js';
import { GATEWAY_CHECKPOINT_PAGES, QueueStore } from './queue/store.js';
import { WriteLock } from './queue/write-lock.js';
import type { InboundSettings } from './smtp/listener.js';
import { ListenerThread } from './smtp/listener-thread.js';
import { ClusterNode, QUEUE_ROWS } from './cluster/node.js';
import { RedisLimits } from './cluster/limits.js';
import type { Membership } from './cluster/membership.js';
import { secretSharing } from './cluster/cli-session.js';
import { countsFor } from './manage/tls-report.js';

/** How long `queue list --state delivered|bounced` can still show a finished recipient. */
export const HISTORY_DAYS = 7;

/** At stop, client sessions and deliveries in progress get this long, at the same time (README). */
const STOP_GRACE_MS = 5000;

export class Gateway {
  readonly config: ConfigStore;
  readonly queue: QueueStore;
  readonly log: MailLog;
  readonly conditions: Conditions;
  readonly engine: DeliveryEngine;
  readonly certificates: CertificateStore;
  private readonly mtaStsStore: MtaStsStore;
  private readonly tlsRptStore: TlsRptStore;
  private readonly tlsRpt: TlsRptCounter;
  private readonly tlsRptSender: TlsRptSender;
  readonly report: TlsReportStore;
  readonly metrics: Metrics;
  private alerter!: Alerter;
  private alertTimer: NodeJS.Timeout | null = null;
  /** The queue's WAL checkpoints, on a worker thread while the gateway runs (queue/checkpointer.ts). */
  private checkpointer: Checkpointer | null = null;
  private readonly tlsCounter: TlsCounter;
  /** The listeners' thread; made in start(), once the listener certificate exists (the demo is created then). */
  listeners: ListenerThread | null = null;
  private holdsPush: NodeJS.Immediate | null = null;
  /** The public listener (`--public-listen`), when on. */
  publicAddress: { address: string; port: number } | null = null;
  private snapshot: ConfigSnapshot;
  private version: number;
  private reloadTimer: NodeJS.Timeout | null = null;
  private cluster: ClusterNode | null = null;
  private sharedLimits: RedisLimits | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  address: { address: string; port: number } | null = null;

  private readonly lock: GatewayLock;
  /** queue.db's write lock, shared with the listener thread. */
  private readonly writeLock = new WriteLock();

  constructor(readonly options: GatewayOptions) {
    prepareDataDir(options.dataDir, { create: true });
    // One gateway per data directory: a second one would deliver the same messages again.
    this.lock = acquireGatewayLock(options.dataDir);
    try {
      this.config = ConfigStore.open(options.dataDir);
      this.queue = QueueStore.open(options.dataDir, { lock: this.writeLock, autoCheckpointPages: GATEWAY_CHECKPOINT_PAGES });
      this.log = new MailLog(options.dataDir, {
        text: options.logTo === 'stdout' ? new StdoutSink() : options.logTo === 'syslog' ? new SyslogSink(options.syslog) : undefined,
        onTrouble: (t) =>
          t.state === 'failing'
            ? this.conditions.raise('mail log', `cannot write ${t.file}: ${t.reason}; log lines are kept in memory meanwhile`)
            : this.conditions.clear('mail log'),
      });
      this.conditions = new Conditions(this.log);
      this.certificates = CertificateStore.open(options.dataDir, this.config);
      this.report = TlsReportStore.open(options.dataDir);
      this.metrics = new Metrics(() => this.queue.stateCounts());
      // Every event (listener, delivery, alerts) is counted as the mail log writes it.
      this.log.subscribe((e) => this.metrics.write(e));
    } catch (e) {
      this.lock.release();
      throw e;
    }
    this.snapshot = this.readSnapshot();
    this.version = this.config.dataVersion();
    this.tlsCounter = new TlsCounter(this.report, Date.now, (reason) =>
      reason === null ? this.conditions.clear('TLS report') : this.conditions.raise('TLS report', `connection counts cannot be written to report.db: ${reason}; they are kept in memory meanwhile`),
    );
    const mailLog = this.log;
    const counter = this.tlsCounter;
    const alerter = (this.alerter = new Alerter({
      accept: (m) => this.queue.accept(m),
      log: this.log,
      config: () => ({ globals: this.snapshot.globals, recipients: this.snapshot.alertRecipients ?? [] }),
      tlsAlertOverride: (domain) => this.snapshot.table.resolve(domain).tlsAlert,
      hostname: options.hostname,
      queued: () => this.engine.wake(),
    }));
    const dns = deliveryDns({ dnsServers: options.dnsServers, dnssecResolvers: options.dnssecResolvers, observe: (type, seconds) => this.metrics.dnsSeconds.observe({ type }, seconds) });
    this.mtaStsStore = MtaStsStore.open(options.dataDir);
    // The delivery trust store: system roots (unless turned off) and certconfig's authorities.
    const deliveryTrust = () => secureContextFor({ useSystem: this.snapshot.globals.useSystemAuthorities, custom: this.snapshot.authorities.map((a) => a.pem) });
    const sts = new MtaStsResolver({
      dns,
      store: this.mtaStsStore,
      secureContext: deliveryTrust,
      port: options.httpsPort,
    });
    this.tlsRptStore = TlsRptStore.open(options.dataDir);
    const sessions = (this.tlsRpt = new TlsRptCounter(this.tlsRptStore, Date.now, (reason) =>
      reason === null ? this.conditions.clear('TLS sessions') : this.conditions.raise('TLS sessions', `TLS sessions for reporting cannot be written to report.db: ${reason}; they are kept in memory meanwhile`),
    ));
    this.tlsRptSender = new TlsRptSender({
      ...networkDeps(dns, deliveryTrust),
      // In a cluster, every node's sessions summed, and one node sends each report.
      sessions: async (day, domain) => {
        const c = this.cluster;
        if (!c) return this.tlsRptStore.sessions(day, domain);
        return (await askTlsRptSessions(c.client, c.leaseTtlSeconds, day, domain)).sessions;
      },
      claim: async (day, domain) => (this.cluster ? claimTlsRpt(this.cluster.client, this.cluster.node, day, domain) : true),
      sends: new TlsRptSendStore(this.tlsRptStore.db),
      accept: async (m) => {
        const mid = await this.queue.accept(m);
        this.engine.wake();
        return mid;
      },
      settings: () => effectiveTlsRptSettings(this.snapshot.globals, options.hostname),
      hostname: options.hostname,
      log: this.log,
      ...(options.tlsRptDelayMs !== undefined ? { delayMs: options.tlsRptDelayMs } : {}),
    });
    this.engine = new DeliveryEngine({
      queue: this.queue,
      conditions: this.conditions,
      config: () => this.snapshot,
      dns,
      tlsrpt: (s) => sessions.record(s),
      mtaSts: async (domain) => {
        const r = await sts.policyFor(domain);
        if (r.source === 'fetched' && r.finding) mailLog.write({ event: 'sts-policy', domain, detail: `fetched: mode ${r.finding.mode}${r.finding.mx.length ? `, mx ${r.finding.mx.join(', ')}` : ''}` });
        if (r.error) mailLog.write({ event: 'sts-policy', domain, detail: `${r.error.category}: ${r.error.reason}${r.finding ? `; the cached policy (mode ${r.finding.mode}) stays in force` : ''}` });
        // With no policy to apply, the sessions are reported as this fetch failure (RFC 8460 §4.3.2.2).
        return { finding: r.finding, ...(r.error && !r.finding ? { failure: r.error.category } : {}) };
      },
      // Delivery's events go to the mail log, the TLS report's counts and the alerts alike.
      log: { write: (e) => (mailLog.write(e), counter.write(e), alerter.write(e)) },
      hostname: options.hostname,
      smtpPort: options.smtpPort,
      timeouts: options.timeouts,
      pollMs: options.pollMs,
      idleKeptBelow: options.idleKeptBelow,
      maxConnections: options.maxConnections,
      ...(options.deliveryClock ? { now: options.deliveryClock } : {}),
      beforeLease: () => this.applyQueueControl(),
      onHoldsChanged: () => this.pushHolds(),
    });
  }

  /** The store's snapshot plus the outbound client certificate (SPEC §10 SETUP). */
  private readSnapshot(): ConfigSnapshot {
    const snap = this.config.snapshot();
    snap.gateways = new GatewayStore(this.config).snapshot();
    snap.alertRecipients = new AlertStore(this.config).list();
    snap.bvKeys = new BvKeyStore(this.config, this.options.dataDir).keys();
    snap.localDomains = new Set(new LocalDomainStore(this.config).list());
    try {
      snap.clientCertificate = this.certificates.clientCredentials();
    } catch (e) {
      this.log.write({ event: 'config-reloaded', detail: `outbound client certificate not offered: ${(e as Error).message}` });
    }
    return snap;
  }

  get logDir(): string {
    return join(this.options.dataDir, 'logs');
  }

  async start(): Promise<{ address: string; port: number }> {
    if (await this.certificates.ensureDemo({ dnsNames: [this.options.hostname] })) {
      // The gateway's own change, before it starts: read the configuration again, quietly.
      this.version = this.config.dataVersion();
      this.snapshot = this.readSnapshot();
    }
    const credentials = this.certificates.listenerCredentials();
    const o = this.options;
    this.listeners = new ListenerThread(
      () => ({
        dataDir: o.dataDir,
        hostname: o.hostname,
        allowedNetworks: o.allowedNetworks,
        maxMessageSize: o.maxMessageSize,
        maxRecipients: o.maxRecipients,
        tlsKey: credentials.keyPem,
        tlsCert: credentials.certPem,
        closeTimeoutMs: STOP_GRACE_MS,
        idleTimeoutMs: o.idleTimeoutMs,
        relay: o.listen,
        ...(o.publicListen ? { public: { ...o.publicListen, settings: this.inboundSettings() } } : {}),
        view: this.engine.arrivalView(),
        writeLock: this.writeLock.buffer,
      }),
      {
        log: this.log,
        conditions: this.conditions,
        accepted: (mid, recipients) => this.engine.accepted(mid, { recipients }),
        acceptTime: (seconds) => this.metrics.acceptSeconds.observe(seconds),
        releaseWriteLock: (threadId) => this.writeLock.releaseIfHeldBy(threadId),
      },
    );
    const bound = await this.listeners.start();
    this.address = bound.relay;
    this.publicAddress = bound.public ?? null;
    this.log.write({ event: 'gateway-start', version: VERSION, detail: `process ${process.pid}, listening on ${this.address.address}:${this.address.port}${this.publicAddress ? `, public listener on ${this.publicAddress.address}:${this.publicAddress.port}` : ''}, hostname ${this.options.hostname}` });
    this.queue.setFact('hostname', this.options.hostname); // the Reporting-MTA of `queue bounce` DSNs
    this.checkpointer = new Checkpointer(join(this.options.dataDir, 'queue.db'), CHECKPOINT_EVERY_MS, (e) =>
      this.conditions.raise(QUEUE_STORAGE, `the queue's background checkpoints stopped (the gateway's own go on): ${e.message}`),
    );
    this.engine.start();
    if (this.options.cluster) this.joinCluster(this.options.cluster);
    this.reloadTimer = setInterval(() => {
      this.reloadIfChanged();
      this.applyQueueControl();
    }, this.options.reloadMs);
    this.maintainReport();
    this.tlsRptSender.start(this.options.tlsRptCheckMs);
    this.alertTimer = setInterval(() => {
      try {
        this.alerter.check((before) => this.queue.waitingFacts(before));
      } catch (e) {
        this.conditions.raise(QUEUE_STORAGE, `alert thresholds cannot be checked: ${(e as Error).message}`);
      }
    }, this.options.alertCheckMs);
    this.pruneTimer = setInterval(() => {
      this.queue.pruneHistory(Date.now() - HISTORY_DAYS * 86_400_000);
      this.maintainReport();
    }, 3_600_000);
    return this.address;
  }

  /**
   * Cluster mode (SPEC §12): the configuration kept at the cluster's version, heartbeats,
   * limits counted with the other nodes, remembered broken TLS shared, and the alert when Redis
   * is lost.
   */
  private joinCluster(membership: Membership): void {
    const pending = () => {
      const c = this.queue.stateCounts();
      return c.queued + c.deferred;
    };
    const node = (this.cluster = new ClusterNode({
      membership,
      store: this.config,
      queueSize: pending,
      // The gateway's own write does not move config.db's data version for itself: reload now.
      onConfig: (version) => this.reload(`cluster configuration version ${version}`),
      brokenTls: this.engine.brokenTls,
      secrets: secretSharing(this.options.dataDir, membership),
      reportCounts: (ask) => (ask.tlsrpt ? { rows: [], series: [], sessions: this.tlsRptStore.sessions(ask.tlsrpt.day, ask.tlsrpt.domain) } : countsFor(this.report, ask)),
      metrics: () => this.metrics.registry.getMetricsAsJSON(),
      onSecrets: (state) =>
        this.log.write({
          event: 'config-reloaded',
          detail:
            state === 'other secret file'
              ? "certificates and keys stay this node's own: the cluster's were sealed with another cluster secret file than this node's"
              : `certificates and keys: ${state === 'shared' ? "the cluster's, sealed with the cluster secret file" : 'per node'}`,
        }),
      queueRows: () => ({ total: pending(), rows: this.queue.list({ state: 'pending', limit: QUEUE_ROWS }) }),
      onTrouble: (reason) => {
        if (reason === null) return this.conditions.clear('cluster');
        this.conditions.raise('cluster', reason);
        this.alerter.clusterLost(reason);
      },
    }));
    node.start();
    this.sharedLimits = new RedisLimits({ redis: node.client, node: membership.node, leaseTtlMs: membership.leaseTtlSeconds * 1000, nodesAlive: () => node.nodesAlive() });
    this.engine.setSharedLimits(this.sharedLimits);
  }

  /** The public listener's rules, from the configuration in effect now. */
  private inboundSettings(): InboundSettings {
    const snap = this.snapshot;
    const g = snap.globals;
    return {
      localDomains: snap.localDomains ?? new Set(),
      keys: tagKeys(snap.bvKeys ?? []).all,
      invalidAction: g.bvInvalidAction,
      untaggedValid: g.bvUntaggedValid,
      header: g.bvHeader,
      connectionsPerClient: g.publicConnectionsPerClient,
      maxMessageSize: g.publicMaxMessageSize ?? this.options.maxMessageSize,
      maxRecipients: g.publicMaxRecipients ?? this.options.maxRecipients,
    };
  }

  /** The TLS report's roll-up and retention (hourly). */
  private maintainReport(): void {
    try {
      this.report.maintain(Date.now(), this.snapshot.globals.reportRetentionDays);
    } catch (e) {
      this.log.write({ event: 'config-reloaded', detail: `TLS report maintenance failed: ${(e as Error).message}` });
    }
  }

  /** Picks up changes committed by other processes (the CLI) without a restart. */
  reloadIfChanged(): void {
    const v = this.config.dataVersion();
    if (v === this.version) return;
    this.version = v;
    this.reload();
  }

  private reload(why?: string): void {
    this.snapshot = this.readSnapshot();
    this.log.write({ event: 'config-reloaded', detail: `${this.snapshot.table.size} entries, ${this.snapshot.routes.size} routes${why ? ` (${why})` : ''}` });
    // The listener thread decides with copies: the suspensions (a configuration change ends
    // them) and the public listener's rules.
    this.listeners?.send({ type: 'view', view: this.engine.arrivalView() });
    if (this.options.publicListen) this.listeners?.send({ type: 'inbound', settings: this.inboundSettings() });
    this.engine.wake();
  }

  /** The suspended destinations changed: the listener thread gets a copy, once per turn. */
  private pushHolds(): void {
    this.holdsPush ??= setImmediate(() => {
      this.holdsPush = null;
      this.listeners?.send({ type: 'view', view: this.engine.arrivalView() });
    });
  }

  /** Applies `postern queue delivernow` (left in queue.db by the CLI): resets the destination counters. */
  applyQueueControl(): void {
    try {
      const requests = this.queue.takeControl();
      for (const r of requests) {
        this.engine.resetLimits(r.domain ?? undefined);
        this.log.write({ event: 'queue-action', action: 'limits-reset', detail: `destination counters ${r.domain ? `of ${r.domain}` : 'of every destination'} reset (delivernow)` });
      }
      if (requests.length > 0) this.engine.wake();
    } catch (e) {
      this.conditions.raise(QUEUE_STORAGE, `queue control requests cannot be read: ${(e as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.alertTimer) clearInterval(this.alertTimer);

    // Both get the same grace at the same time, so stopping takes at most that long.
    if (this.holdsPush) clearImmediate(this.holdsPush);
    // The thread gets a little more than its sessions' grace to close its queue connection.
    await Promise.all([this.listeners?.close(STOP_GRACE_MS + 2000), this.engine.stop(STOP_GRACE_MS)]);
    this.sharedLimits?.close();
    await this.cluster?.stop();
    await this.tlsRptSender.stop();
    this.log.write({ event: 'gateway-stop', version: VERSION, detail: `process ${process.pid}` });
    this.tlsCounter.flush();
    this.tlsRpt.flush();
    this.tlsRptStore.close();
    this.report.close();
    await this.checkpointer?.stop();
    this.queue.close();
    this.certificates.close();
    this.mtaStsStore.close();
    this.config.close();
    await this.log.close();
    this.lock.release();
  }
}
