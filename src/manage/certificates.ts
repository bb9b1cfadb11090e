/**
 * Certificates and trusted authorities as services (see manage/destinations.ts for the shape):
 * the stores' validation and refusals, with each change audited — and an export of a private
 * key too, since a key leaving the gateway is something an administrator must be able to trace.
 * Keys themselves never reach the audit log: only names, subjects and fingerprints.
 */
import type { CertificateInfo, CertificateStore } from '../config/certificates.js';
import type { Authority, ConfigStore, GlobalSettings } from '../config/store.js';
import type { Recorder } from './audit.js';

const facts = (c: CertificateInfo): { subject: string; fingerprint: string; notAfter: string } => ({ subject: c.subject, fingerprint: c.fingerprint, notAfter: c.notAfter });

export class CertificateService {
  constructor(
    private readonly certs: CertificateStore,
    private readonly record: Recorder,
  ) {}

  async createSelfSigned(o: Parameters<CertificateStore['createSelfSigned']>[0]): Promise<CertificateInfo> {
    const c = await this.certs.createSelfSigned(o);
    this.record('certificate.create', c.name, facts(c));
    return c;
  }

  importPem(o: Parameters<CertificateStore['importPem']>[0]): CertificateInfo {
    const c = this.certs.importPem(o);
    this.record('certificate.import', c.name, facts(c));
    return c;
  }

  exportPem(name: string, o: { includeKey?: boolean } = {}): string {
    const text = this.certs.exportPem(name, o);
    if (o.includeKey) this.record('certificate.export-key', name);
    return text;
  }

  delete(name: string): CertificateInfo {
    const c = this.certs.delete(name);
    this.record('certificate.delete', c.name, facts(c));
    return c;
  }

  useForListener(name: string): CertificateInfo {
    const before = this.certs.settings().listener;
    const c = this.certs.useForListener(name);
    this.record('certificate.use-listener', c.name, { listener: { from: before ?? 'none', to: c.name } });
    return c;
  }

  useForAdmin(name: string): CertificateInfo {
    const before = this.certs.settings().admin;
    const c = this.certs.useForAdmin(name);
    this.record('certificate.use-admin', c.name, { admin: { from: before, to: c.name } });
    return c;
  }

  useForClient(name: string | null): CertificateInfo | null {
    const before = this.certs.settings().client;
    const c = this.certs.useForClient(name);
    this.record('certificate.use-client', c?.name ?? 'none', { client: { from: before ?? 'none', to: c?.name ?? 'none' } });
    return c;
  }
}

export class AuthorityService {
  constructor(
    private readonly config: ConfigStore,
    private readonly record: Recorder,
  ) {}

  add(pemText: string): Authority[] {
    const added = this.config.addAuthorities(pemText);
    for (const a of added) this.record('authority.add', a.subject, { fingerprint: a.fingerprint });
    return added;
  }

  remove(idOrFingerprint: string): Authority {
    const a = this.config.removeAuthority(idOrFingerprint);
    this.record('authority.remove', a.subject, { fingerprint: a.fingerprint });
    return a;
  }

  useSystem(on: boolean): GlobalSettings {
    const before = this.config.globals().useSystemAuthorities;
    const g = this.config.setGlobals({ useSystemAuthorities: on });
    this.record('authority.system', 'system root store', { useSystemAuthorities: { from: before, to: on } });
    return g;
  }
}
