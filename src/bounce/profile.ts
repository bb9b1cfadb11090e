/**
 * Bounce profiles (SPEC §7): how long and how often a soft failure is retried. Pure: time is
 * passed in.
 */

export interface BounceProfile {
  name: string;
  maxRetries: number;
  /** Seconds a message may stay in the queue. */
  maxQueueSeconds: number;
  initialRetrySeconds: number;
  maxRetrySeconds: number;
  sendHardBounces: boolean;
  /** Largest original message copied whole into a DSN, in bytes; larger ones get their headers. */
  maxBounceCopy: number;
  delayWarnings: boolean;
  delayWarningInterval: number;
  delayWarningMax: number;
  alternateAddress: string | null;
}

export const DEFAULT_PROFILE: BounceProfile = {
  name: 'Default',
  maxRetries: 100,
  maxQueueSeconds: 259_200,
  initialRetrySeconds: 60,
  maxRetrySeconds: 3600,
  sendHardBounces: true,
  maxBounceCopy: 10 * 1024,
  delayWarnings: false,
  delayWarningInterval: 14_400,
  delayWarningMax: 1,
  alternateAddress: null,
};

/** The wait after the n-th failed attempt (n ≥ 1): doubling from the initial wait up to the maximum. */
export function retryDelaySeconds(p: BounceProfile, attemptsMade: number): number {
  const n = Math.max(1, attemptsMade);
  const wait = p.initialRetrySeconds * 2 ** Math.min(n - 1, 40);
  return Math.min(wait, p.maxRetrySeconds);
}

/** A soft failure becomes hard when the retries or the time in queue run out. */
export function exhausted(p: BounceProfile, attemptsMade: number, receivedAt: number, now: number): string | null {
  if (attemptsMade >= p.maxRetries) return `maximum retries (${p.maxRetries}) reached`;
  if ((now - receivedAt) / 1000 >= p.maxQueueSeconds) return `maximum time in queue (${p.maxQueueSeconds} s) reached`;
  return null;
}
