/**
 * BATV tags (src/bounce/batv.ts) against an oracle that does not share its code: the hash is
 * computed by the openssl command line, the day numbers by hand from calendar dates.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { checkTag, dayNumber, parseTag, tagAddress, type TagKey } from '../src/bounce/batv.js';

/** HMAC-SHA1, first three bytes in hex, by openssl. */
function opensslTag(keyText: string, message: string): string {
  const out = execFileSync('openssl', ['dgst', '-sha1', '-hmac', keyText], { input: message }).toString();
  return /= ([0-9a-f]{40})/.exec(out)![1]!.slice(0, 6);
}

const NOW = Date.UTC(2026, 11, 1, 15, 30); // 2026-12-01: day 20788
const KEY = { number: 3, text: 'correct horse battery staple' };

test('the day number is days since 1970-01-01 (UTC)', () => {
  assert.equal(dayNumber(Date.UTC(1970, 0, 1, 23, 59)), 0);
  assert.equal(dayNumber(NOW), 20788);
});

test('tagAddress: prvs=KDDDSSSSSS=address, DDD the expiry day mod 1000, SSSSSS by HMAC-SHA1 of the lower-cased address', () => {
  // 20788 + 7 = 20795 → 795.
  const tagged = tagAddress('Joe.Smith@Example.ORG', KEY, NOW);
  const expected = opensslTag(KEY.text, '3795joe.smith@example.org');
  assert.equal(tagged, `prvs=3795${expected}=Joe.Smith@Example.ORG`);
  // The day wraps at 1000 and keeps three digits.
  const onDay = (d: number) => d * 86_400_000 + 3_600_000;
  assert.match(tagAddress('a@b.test', KEY, onDay(20_991)), /^prvs=3998[0-9a-f]{6}=a@b\.test$/);
  assert.match(tagAddress('a@b.test', KEY, onDay(20_995)), /^prvs=3002[0-9a-f]{6}=a@b\.test$/);
  assert.equal(Date.UTC(2027, 5, 22), 20_991 * 86_400_000, '(day 20,991 is 2027-06-22)');
});

test('the null sender and an already tagged address are not tagged', () => {
  assert.equal(tagAddress('', KEY, NOW), '');
  const once = tagAddress('joe@example.org', KEY, NOW);
  assert.equal(tagAddress(once, KEY, NOW), once);
  const appliance = 'prvs=joe=3795abcdef@example.org';
  assert.equal(tagAddress(appliance, KEY, NOW), appliance);
});

test('parseTag reads both orders and nothing else', () => {
  assert.deepEqual(parseTag('prvs=3795a1b2c3=joe@example.org'), { keyNumber: 3, day: 795, hash: 'a1b2c3', original: 'joe@example.org', order: 'draft' });
  assert.deepEqual(parseTag('PRVS=joe=3795A1B2C3@example.org'), { keyNumber: 3, day: 795, hash: 'a1b2c3', original: 'joe@example.org', order: 'appliance' });
  // A local part with = in it keeps it.
  assert.equal(parseTag('prvs=3795a1b2c3=a=b@example.org')?.original, 'a=b@example.org');
  for (const untagged of ['joe@example.org', 'prvs@example.org', 'prvs=@example.org', 'prvs=3795a1b2c=joe@example.org', 'prvs=x795a1b2c3=joe@example.org', 'prvs=3795a1b2c3=@example.org', 'prvs=3795a1b2c3', '']) {
    assert.equal(parseTag(untagged), null, untagged);
  }
});

test('checkTag strict: valid within 7 days; expired, future, wrong hash, unknown key and a key retired 7 days ago refused', () => {
  const keys: TagKey[] = [{ ...KEY, retiredAt: null }];
  const at = (days: number) => NOW + days * 86_400_000;
  const tagMadeOn = (days: number) => parseTag(tagAddress('joe@example.org', KEY, at(days)))!;
  assert.deepEqual(checkTag(tagMadeOn(0), keys, NOW, 'strict'), { valid: true });
  assert.deepEqual(checkTag(tagMadeOn(-7), keys, NOW, 'strict'), { valid: true }, 'made 7 days ago: its last day');
  assert.deepEqual(checkTag(tagMadeOn(-8), keys, NOW, 'strict'), { valid: false, reason: 'the tag expired 1 day ago' });
  assert.deepEqual(checkTag(tagMadeOn(-30), keys, NOW, 'strict'), { valid: false, reason: 'the tag expired 23 days ago' });
  assert.deepEqual(checkTag(tagMadeOn(2), keys, NOW, 'strict'), { valid: false, reason: 'the tag is dated in the future' });
  const good = tagMadeOn(0);
  assert.deepEqual(checkTag({ ...good, hash: good.hash === '000000' ? '000001' : '000000' }, keys, NOW, 'strict'), { valid: false, reason: 'the hash does not match' });
  assert.deepEqual(checkTag({ ...good, original: 'jane@example.org' }, keys, NOW, 'strict'), { valid: false, reason: 'the hash does not match' });
  assert.deepEqual(checkTag({ ...good, keyNumber: 4 }, keys, NOW, 'strict'), { valid: false, reason: 'unknown key 4' });
  // The address compares without case: the hash is over the lower-cased address.
  assert.deepEqual(checkTag({ ...good, original: 'JOE@Example.org' }, keys, NOW, 'strict'), { valid: true });
  const retired = (days: number): TagKey[] => [{ ...KEY, retiredAt: at(-days) }];
  assert.deepEqual(checkTag(good, retired(3), NOW, 'strict'), { valid: true }, 'retired 3 days ago');
  assert.deepEqual(checkTag(good, retired(8), NOW, 'strict'), { valid: false, reason: 'key 3 was retired more than 7 days ago' });
  // The appliance's order verifies the same way.
  const appliance = parseTag(`prvs=joe=3795${opensslTag(KEY.text, '3795joe@example.org')}@example.org`)!;
  assert.deepEqual(checkTag(appliance, keys, NOW, 'strict'), { valid: true });
});

test('checkTag lenient (replies): expired tags and long-retired keys still verify; the hash still must match', () => {
  const old = parseTag(tagAddress('joe@example.org', KEY, NOW - 40 * 86_400_000))!;
  const longRetired: TagKey[] = [{ ...KEY, retiredAt: NOW - 90 * 86_400_000 }];
  assert.deepEqual(checkTag(old, longRetired, NOW, 'lenient'), { valid: true });
  assert.deepEqual(checkTag({ ...old, hash: 'ffffff' === old.hash ? 'fffffe' : 'ffffff' }, longRetired, NOW, 'lenient'), { valid: false, reason: 'the hash does not match' });
  assert.deepEqual(checkTag({ ...old, keyNumber: 9 }, longRetired, NOW, 'lenient'), { valid: false, reason: 'unknown key 9' });
});
