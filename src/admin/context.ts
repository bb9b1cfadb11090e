/**
 * What the web page and the API work on: their own connections to the data directory's stores
 * (so that the running gateway sees each change through SQLite's data_version within a second,
 * exactly as it sees a CLI change) and the manage/ services, made for one actor per request so
 * that every change is audited with who made it and from where.
 */
import { CertificateStore } from '../config/certificates.js';
import { GatewayStore } from '../config/gateways.js';
import { ProfileStore } from '../config/profiles.js';
import { ConfigStore } from '../config/store.js';
import type { EventSink } from '../observe/maillog.js';
import { QueueStore } from '../queue/store.js';
import { TlsReportStore } from '../observe/tls-report.js';
import { recorder, type Actor } from '../manage/audit.js';
import { BvService } from '../manage/bounce-verification.js';
import { PublicListenerService } from '../manage/public-listener.js';
import { AlertService } from '../manage/alerts.js';
import { TlsRptSettingsService } from '../manage/tlsrpt-settings.js';
import { AuthorityService, CertificateService } from '../manage/certificates.js';
import { DestinationService } from '../manage/destinations.js';
import { GatewayService } from '../manage/gateways.js';
import { ProfileService } from '../manage/profiles.js';
import { QueueService } from '../manage/queue.js';
import { RouteService } from '../manage/routes.js';
import { TokenStore } from '../manage/tokens.js';
import { UserStore } from '../manage/users.js';

export interface Services {
  destinations: DestinationService;
  routes: RouteService;
  profiles: ProfileService;
  gateways: GatewayService;
  certificates: CertificateService;
  authorities: AuthorityService;
  queue: QueueService;
  alerts: AlertService;
  tlsrpt: TlsRptSettingsService;
  bv: BvService;
  publicListener: PublicListenerService;
}

export class AdminContext {
  readonly config: ConfigStore;
  readonly queue: QueueStore;
  readonly certificates: CertificateStore;
  readonly users: UserStore;
  readonly tokens: TokenStore;
  readonly report: TlsReportStore;

  constructor(
    readonly dataDir: string,
    /** The gateway's mail log: queue actions write their per-recipient lines there. */
    readonly log: EventSink,
    /** The gateway's host name (the Reporting-MTA of DSNs made by "bounce"). */
    readonly hostname: string,
    /** Delivery's DNS servers and SMTP port, for `explain`. */
    readonly delivery: { dnsServers: string[]; dnssecResolvers?: string[]; smtpPort: number } = { dnsServers: [], smtpPort: 25 },
  ) {
    this.config = ConfigStore.open(dataDir);
    this.queue = QueueStore.open(dataDir);
    this.certificates = CertificateStore.open(dataDir, this.config);
    this.users = new UserStore(this.config, dataDir);
    this.tokens = new TokenStore(this.config, dataDir);
    this.report = TlsReportStore.open(dataDir);
  }

  /** The services, acting for `by`. */
  services(by: Actor): Services {
    const record = recorder(this.dataDir, by);
    return {
      destinations: new DestinationService(this.config, record),
      routes: new RouteService(this.config, record),
      profiles: new ProfileService(this.config, record),
      gateways: new GatewayService(this.config, record),
      certificates: new CertificateService(this.certificates, record),
      authorities: new AuthorityService(this.config, record),
      queue: new QueueService(this.queue, this.log, record),
      alerts: new AlertService(this.config, record),
      tlsrpt: new TlsRptSettingsService(this.config, record),
      bv: new BvService(this.config, this.dataDir, record),
      publicListener: new PublicListenerService(this.config, record),
    };
  }

  profileStore(): ProfileStore {
    return new ProfileStore(this.config);
  }

  profileNames(): string[] {
    return this.profileStore().list().map((p) => p.name);
  }

  gatewayStore(): GatewayStore {
    return new GatewayStore(this.config);
  }

  close(): void {
    this.report.close();
    this.certificates.close();
    this.queue.close();
    this.config.close();
  }
}
