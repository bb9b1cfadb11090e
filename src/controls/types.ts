/**
 * The destination-controls table: the shapes of an entry and its settings (SPEC §1).
 * A non-default entry leaves a setting out to mean "Default": inherit the (Default) entry's
 * value at the time of use.
 */

export const TLS_MODES = [
  'no',
  'preferred',
  'required',
  'preferred-verify',
  'required-verify',
  'required-verify-hosted',
] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** The appliance's spelling of each TLS setting, as shown in LIST, DETAIL and the web page. */
export const TLS_MODE_LABELS: Record<TlsMode, string> = {
  no: 'No',
  preferred: 'Preferred',
  required: 'Required',
  'preferred-verify': 'Preferred - Verify',
  'required-verify': 'Required - Verify',
  'required-verify-hosted': 'Required - Verify Hosted Domains',
};

export const IP_PREFERENCES = ['ipv6-preferred', 'ipv6-required', 'ipv4-preferred', 'ipv4-required'] as const;
export type IpPreference = (typeof IP_PREFERENCES)[number];

export const IP_PREFERENCE_LABELS: Record<IpPreference, string> = {
  'ipv6-preferred': 'IPv6 Preferred',
  'ipv6-required': 'IPv6 Required',
  'ipv4-preferred': 'IPv4 Preferred',
  'ipv4-required': 'IPv4 Required',
};

/**
 * DANE (RFC 7672) for a destination: TLSA records published under DNSSEC for an MX host make
 * STARTTLS mandatory and authenticate its certificate. `opportunistic` uses them where found,
 * `required` delivers only through hosts with usable TLSA records, `off` never looks. The same
 * values as src/tls/sources.ts's DaneMode, which composes them.
 */
export const DANE_MODES = ['off', 'opportunistic', 'required'] as const;
export type DaneMode = (typeof DANE_MODES)[number];

/** How DETAIL, the dialogue and the web page name each DANE setting. */
export const DANE_MODE_LABELS: Record<DaneMode, string> = {
  off: 'Off',
  opportunistic: 'Opportunistic',
  required: 'Required',
};

/** N recipients per M minutes; null in a value means "No Limit". */
export interface RecipientLimit {
  recipients: number;
  minutes: number;
}

export type LimitPer = 'domain' | 'mx-ip';
export type EnforcePer = 'system' | 'virtual-gateway';

/** The appliance's settings (SPEC §1). */
export interface ApplianceSettings {
  ipPreference: IpPreference;
  concurrency: number;
  messagesPerConnection: number;
  recipientLimit: RecipientLimit | null;
  limitPer: LimitPer;
  enforce: EnforcePer;
  tls: TlsMode;
  bounceVerification: boolean;
  bounceProfile: string;
}

/**
 * Beyond the appliance (SPEC §12), settings like the appliance's: the (Default) entry holds them
 * and an entry may inherit them. Which recipient-side TLS policy sources an entry allows:
 * `dane` (see DANE_MODES) and `mtaSts`, MTA-STS (RFC 8461): a recipient domain's published
 * policy in `enforce` mode limits delivery to its listed MX hosts over verified TLS.
 */
export interface TlsPolicySettings {
  dane: DaneMode;
  mtaSts: boolean;
}

/** Every setting the (Default) entry holds. */
export interface Settings extends ApplianceSettings, TlsPolicySettings {}

/**
 * The names of the appliance's settings: what views of the appliance's settings one by one (such
 * as explain's list) are typed by. The name of any setting of the table is DefaultSettingName.
 */
export type SettingName = keyof ApplianceSettings;
/** The name of every setting the (Default) entry holds: the appliance's and DANE / MTA-STS. */
export type DefaultSettingName = keyof Settings;

/**
 * Settings only a non-default entry holds. `tlsAlert` overrides, for this entry's destinations,
 * the global switch `destconfig setup --required-tls-alert`, which stands where a (Default)
 * value would: absent means "follow the switch".
 */
export interface EntryOnlySettings {
  tlsAlert: boolean;
}
export type EntrySettingName = DefaultSettingName | keyof EntryOnlySettings;
export const ENTRY_ONLY_SETTINGS: readonly (keyof EntryOnlySettings)[] = ['tlsAlert'];

/** Settings of a non-default entry: an absent key means Default. */
export type PartialSettings = Partial<Settings> & Partial<EntryOnlySettings>;

export interface Entry {
  /** Normalised A-label name: `example.com` or `.example.com`. */
  name: string;
  settings: PartialSettings;
}

export const DEFAULT_ENTRY_NAME = '(Default)';

export const INITIAL_DEFAULTS: Settings = {
  ipPreference: 'ipv6-preferred',
  concurrency: 500,
  messagesPerConnection: 50,
  recipientLimit: null,
  limitPer: 'domain',
  enforce: 'system',
  tls: 'no',
  dane: 'opportunistic',
  mtaSts: true,
  bounceVerification: false,
  bounceProfile: 'Default',
};

/** The outcome of a lookup: the matched entry's name and every setting resolved. */
export interface ResolvedEntry {
  matched: string;
  settings: Settings;
  /** Which settings came from (Default) rather than the matched entry. */
  inherited: DefaultSettingName[];
  /** The matched entry's required-TLS alert override; undefined: the global switch decides. */
  tlsAlert?: boolean;
}
