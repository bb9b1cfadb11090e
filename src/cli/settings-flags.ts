/**
 * Command-line flags for destination settings (`--tls required-verify`, `--recipients 1000/60`,
 * …) to partial settings, and the value `default` to "put back to Default". Pure.
 */
import type { PartialSettings, SettingName } from '../controls/types.js';
import { parseIntegerIn, parseIpPreference, parseTlsMode, RANGES, ValidationError } from '../controls/validate.js';

export interface SettingFlags {
  tls?: string;
  concurrency?: string;
  messagesPerConnection?: string;
  recipients?: string;
  limitPer?: string;
  enforce?: string;
  bounceVerification?: string;
  bounceProfile?: string;
  ipPreference?: string;
}

export interface ParsedFlags {
  settings: PartialSettings;
  reset: SettingName[];
}

const FLAG_TO_SETTING: Record<keyof SettingFlags, SettingName> = {
  tls: 'tls',
  concurrency: 'concurrency',
  messagesPerConnection: 'messagesPerConnection',
  recipients: 'recipientLimit',
  limitPer: 'limitPer',
  enforce: 'enforce',
  bounceVerification: 'bounceVerification',
  bounceProfile: 'bounceProfile',
  ipPreference: 'ipPreference',
};

/** `allowDefault`: whether `default` is accepted (not for the (Default) entry itself). */
export function parseSettingFlags(f: SettingFlags, allowDefault: boolean): ParsedFlags {
  const settings: PartialSettings = {};
  const reset: SettingName[] = [];
  for (const [flag, raw] of Object.entries(f) as [keyof SettingFlags, string | undefined][]) {
    if (raw === undefined || !(flag in FLAG_TO_SETTING)) continue;
    const name = FLAG_TO_SETTING[flag];
    const v = raw.trim().toLowerCase();
    if (v === 'default') {
      // The (Default) entry cannot inherit; for it, `default` names the profile called Default.
      if (!allowDefault && flag === 'bounceProfile') {
        settings.bounceProfile = 'Default';
        continue;
      }
      if (!allowDefault) throw new ValidationError(flagName(flag), raw, 'a value (the (Default) entry cannot inherit)');
      reset.push(name);
      continue;
    }
    switch (flag) {
      case 'tls':
        settings.tls = parseTlsMode(v, '--tls');
        break;
      case 'concurrency':
        settings.concurrency = parseIntegerIn('--concurrency', v, RANGES.concurrency.min, RANGES.concurrency.max);
        break;
      case 'messagesPerConnection':
        settings.messagesPerConnection = parseIntegerIn(
          '--messages-per-connection',
          v,
          RANGES.messagesPerConnection.min,
          RANGES.messagesPerConnection.max,
        );
        break;
      case 'recipients': {
        if (v === 'none' || v === 'no-limit' || v === 'unlimited') {
          settings.recipientLimit = null;
          break;
        }
        const m = /^([\d,]+)\/(\d+)$/.exec(v);
        if (!m) throw new ValidationError('--recipients', raw, 'N/M (N recipients per M minutes) or none');
        settings.recipientLimit = {
          recipients: parseIntegerIn('--recipients count', m[1], RANGES.recipients.min, RANGES.recipients.max),
          minutes: parseIntegerIn('--recipients minutes', m[2], RANGES.minutes.min, RANGES.minutes.max),
        };
        break;
      }
      case 'limitPer':
        if (v !== 'domain' && v !== 'mx-ip') throw new ValidationError('--limit-per', raw, 'domain, mx-ip, default');
        settings.limitPer = v;
        break;
      case 'enforce':
        if (v !== 'system' && v !== 'virtual-gateway') throw new ValidationError('--enforce', raw, 'system, virtual-gateway, default');
        settings.enforce = v;
        break;
      case 'bounceVerification':
        if (!['on', 'off', 'yes', 'no'].includes(v)) throw new ValidationError('--bounce-verification', raw, 'on, off, default');
        settings.bounceVerification = v === 'on' || v === 'yes';
        break;
      case 'bounceProfile':
        settings.bounceProfile = raw.trim();
        break;
      case 'ipPreference':
        settings.ipPreference = parseIpPreference(v, '--ip-preference');
        break;
    }
  }
  return { settings, reset };
}

function flagName(k: keyof SettingFlags): string {
  return '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
