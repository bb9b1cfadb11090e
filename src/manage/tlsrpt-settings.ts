/**
 * The settings of SMTP TLS Reporting (RFC 8460) — the daily reports Postern sends to recipient
 * domains — as a service (see manage/destinations.ts for the shape): four global settings,
 * checked here, stored by config/store.ts, each change audited (`tlsrpt.setup`).
 *
 * effectiveTlsRptSettings(g, hostname): pure; the values a report is made with, defaults filled in
 *   (organization: the host name; sender: noreply-smtp-tls-reporting@ the host name; contact:
 *   the sender).
 * tlsRptState(g, hostname): what `tlsrptconfig show --json` and GET /tlsrpt-settings answer —
 *   the stored settings (null: the default) and the effective values.
 * TlsRptSettingsService.setup(input): changes any of the four; `default` puts a text setting
 *   back to its default; a bad value throws a ValidationError naming the setting and the value.
 */
import { parseAlertAddress } from '../config/alerts.js';
import type { ConfigStore, GlobalSettings } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import type { Recorder } from './audit.js';
import { changeGlobals } from './destinations.js';

export interface EffectiveTlsRptSettings {
  enabled: boolean;
  organization: string;
  contact: string;
  sender: string;
}

export interface TlsRptSettingsInput {
  enabled?: string | boolean;
  organization?: string;
  contact?: string;
  sender?: string;
}

/** The setting names, as ValidationErrors (and so every interface) name them. */
export const TLSRPT_FIELDS = {
  enabled: 'TLS reporting (enabled)',
  organization: 'TLS report organization',
  contact: 'TLS report contact',
  sender: 'TLS report sender',
} as const;

/** Longest organization name or contact text (characters). */
export const TLSRPT_TEXT_MAX = 200;

export const defaultTlsRptSender = (hostname: string): string => `noreply-smtp-tls-reporting@${hostname}`;

export function effectiveTlsRptSettings(g: GlobalSettings, hostname: string): EffectiveTlsRptSettings {
  const sender = g.tlsrptSender ?? defaultTlsRptSender(hostname);
  return {
    enabled: g.tlsrptEnabled,
    organization: g.tlsrptOrganization ?? hostname,
    contact: g.tlsrptContact ?? sender,
    sender,
  };
}

/** The four settings as stored (null: the default). */
export const tlsRptSettings = (g: GlobalSettings) => ({ enabled: g.tlsrptEnabled, organization: g.tlsrptOrganization, contact: g.tlsrptContact, sender: g.tlsrptSender });

export function tlsRptState(g: GlobalSettings, hostname: string) {
  return { settings: tlsRptSettings(g), effective: effectiveTlsRptSettings(g, hostname) };
}

const auditView = (g: GlobalSettings) => ({ tlsrptEnabled: g.tlsrptEnabled, tlsrptOrganization: g.tlsrptOrganization, tlsrptContact: g.tlsrptContact, tlsrptSender: g.tlsrptSender });

const YES = ['yes', 'on', 'true'];
const NO = ['no', 'off', 'false'];

export function parseTlsRptEnabled(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (YES.includes(v)) return true;
    if (NO.includes(v)) return false;
  }
  throw new ValidationError(TLSRPT_FIELDS.enabled, value, 'yes, no (or on, off, true, false)');
}

const isDefault = (value: string) => value.trim().toLowerCase() === 'default';

/** Control, format and separator characters other than the space: not printable in a report field. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** Free text of 1 to 200 printable characters (surrounding spaces dropped), or null for `default`. */
function parseText(field: string, value: unknown, what: string): string | null {
  const allowed = `${what}: 1 to ${TLSRPT_TEXT_MAX} printable characters (no control characters), or default`;
  if (typeof value !== 'string') throw new ValidationError(field, value, allowed);
  if (isDefault(value)) return null;
  const text = value.trim();
  if (text === '' || [...text].length > TLSRPT_TEXT_MAX || UNPRINTABLE.test(text)) throw new ValidationError(field, value, allowed);
  return text;
}

export const parseTlsRptOrganization = (value: unknown): string | null => parseText(TLSRPT_FIELDS.organization, value, 'an organization name');
export const parseTlsRptContact = (value: unknown): string | null => parseText(TLSRPT_FIELDS.contact, value, 'an email address or a URL');

/** A plain address (as the alert sender), or null for `default`. */
export function parseTlsRptSender(value: unknown): string | null {
  const allowed = 'an email address (local@domain), or default';
  if (typeof value !== 'string') throw new ValidationError(TLSRPT_FIELDS.sender, value, allowed);
  if (isDefault(value)) return null;
  try {
    return parseAlertAddress(value);
  } catch (e) {
    if (e instanceof ValidationError) throw new ValidationError(TLSRPT_FIELDS.sender, value, allowed);
    throw e;
  }
}

export class TlsRptSettingsService {
  constructor(
    private readonly config: ConfigStore,
    private readonly record: Recorder,
  ) {}

  /** Every value is checked before any is stored: one bad value changes nothing. */
  setup(input: TlsRptSettingsInput): GlobalSettings {
    const changes: Partial<GlobalSettings> = {};
    if (input.enabled !== undefined) changes.tlsrptEnabled = parseTlsRptEnabled(input.enabled);
    if (input.organization !== undefined) changes.tlsrptOrganization = parseTlsRptOrganization(input.organization);
    if (input.contact !== undefined) changes.tlsrptContact = parseTlsRptContact(input.contact);
    if (input.sender !== undefined) changes.tlsrptSender = parseTlsRptSender(input.sender);
    return changeGlobals(this.config, this.record, { action: 'tlsrpt.setup', target: 'TLS reporting', view: auditView }, changes);
  }
}
