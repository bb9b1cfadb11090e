/**
 * Text forms of bounce profiles for the console, shared by `postern bounceconfig list|detail`
 * and the bounceconfig dialogue so that both print the same thing. Pure.
 *
 * PROFILE_LIST_HEADER / profileListRows(profiles, usersOf): LIST's columns, one row a profile.
 * profileDetailLines(p, users): DETAIL's lines, every field in words with its unit, then the
 *   entries that use the profile.
 * profileJson(p, users): the machine-readable form (`--json`): every field plus `usedBy`.
 */
import type { BounceProfile } from '../bounce/profile.js';

const count = (n: number): string => n.toLocaleString('en-US');

/** `259,200 seconds (72 hours)`: seconds, with whole hours or minutes beside them when exact. */
export function secondsText(n: number): string {
  const base = `${count(n)} ${n === 1 ? 'second' : 'seconds'}`;
  if (n >= 3600 && n % 3600 === 0) return `${base} (${count(n / 3600)} ${n === 3600 ? 'hour' : 'hours'})`;
  if (n >= 60 && n % 60 === 0 && n < 3600) return `${base} (${count(n / 60)} ${n === 60 ? 'minute' : 'minutes'})`;
  return base;
}

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

export const PROFILE_LIST_HEADER = ['Profile', 'Max Retries', 'Max Time in Queue', 'Retry Wait', 'Hard Bounces', 'Delay Warnings', 'Alternate Address', 'Used By'];

export function profileListRows(profiles: BounceProfile[], usersOf: (name: string) => string[]): string[][] {
  return profiles.map((p) => {
    const users = usersOf(p.name);
    return [
      p.name,
      count(p.maxRetries),
      `${count(p.maxQueueSeconds)} s`,
      `${count(p.initialRetrySeconds)} - ${count(p.maxRetrySeconds)} s`,
      yesNo(p.sendHardBounces),
      p.delayWarnings ? `Yes (${count(p.delayWarningMax)}, every ${count(p.delayWarningInterval)} s)` : 'No',
      p.alternateAddress ?? '-',
      users.length === 0 ? '-' : users.length === 1 ? users[0]! : `${count(users.length)} entries`,
    ];
  });
}

export function profileDetailLines(p: BounceProfile, users: string[]): string[] {
  return [
    `Bounce Profile: ${p.name}`,
    `Maximum Retries: ${count(p.maxRetries)}`,
    `Maximum Time in Queue: ${secondsText(p.maxQueueSeconds)}`,
    `Initial Retry Wait: ${secondsText(p.initialRetrySeconds)}`,
    `Maximum Retry Wait: ${secondsText(p.maxRetrySeconds)}`,
    `Send Hard Bounce Messages: ${yesNo(p.sendHardBounces)}`,
    'DSN Format: RFC 3464 (multipart/report)',
    `Maximum Bounce Copy: ${count(p.maxBounceCopy)} bytes`,
    `Send Delay Warnings: ${yesNo(p.delayWarnings)}`,
    `Delay Warning Interval: ${secondsText(p.delayWarningInterval)}`,
    `Maximum Delay Warnings: ${count(p.delayWarningMax)}`,
    `Alternate Address: ${p.alternateAddress ?? 'None (the sender)'}`,
    `Used By: ${users.length === 0 ? 'no entry' : users.join(', ')}`,
  ];
}

export function profileJson(p: BounceProfile, users: string[]): BounceProfile & { usedBy: string[] } {
  return { ...p, usedBy: users };
}
