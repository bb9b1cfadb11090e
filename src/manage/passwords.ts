/**
 * Administrator passwords: hashed with scrypt (node:crypto), a memory-hard function, with a
 * random salt per password. The stored form names its parameters so they can be raised later
 * without invalidating existing hashes: `scrypt$N$r$p$<salt b64>$<hash b64>`.
 *
 * hashPassword(pw), verifyPassword(pw, stored): verification compares in constant time and is
 *   false (never an exception) for a stored value it cannot read.
 * passwordProblem(pw, name): why a new password is refused, or null.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 1 << 15; // 32 MiB with r = 8: memory-hard, ~100 ms here
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
export const MIN_PASSWORD_LENGTH = 10;

function derive(password: string, salt: Buffer, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_LENGTH, { ...o, maxmem: 256 * 1024 * 1024 }, (e, key) => (e ? reject(e) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (!Number.isInteger(n) || !Number.isInteger(r) || !Number.isInteger(p)) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  try {
    const got = await derive(password, salt, { N: n!, r: r!, p: p! });
    return got.length === want.length && timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

export function passwordProblem(password: string, name: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) return `at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > 1024) return 'at most 1,024 characters';
  if (/[\x00-\x1f\x7f]/.test(password)) return 'no control characters';
  if (password.toLowerCase() === name.toLowerCase()) return 'not the user name';
  return null;
}

/** A random password for a new account (shown once): 20 characters, ~119 bits. */
export function randomPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(20);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}
