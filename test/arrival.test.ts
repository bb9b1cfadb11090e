/**
 * delivery/arrival.ts deferDue (pure): the engine's lease sorts out the due recipients of a held
 * (suspended) destination and defers them again at once, grouped by retry time; everything that
 * needs the normal way — another destination, a hold that has ended, a bounce or a delay warning
 * due now — is kept for delivery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deferDue, destinationKey, type ArrivalHold } from '../src/delivery/arrival.js';
import { DEFAULT_PROFILE, type BounceProfile } from '../src/bounce/profile.js';
import type { LeasedRecipient } from '../src/queue/store.js';

const NOW = 1_800_000_000_000;
let nextId = 1;
function row(domain: string, o: Partial<LeasedRecipient> = {}): LeasedRecipient {
  const id = nextId++;
  return {
    id,
    messageId: 1000 + id,
    rid: 0,
    address: `u${id}@${domain}`,
    domain,
    state: 'queued',
    attempts: 1,
    nextAttempt: NOW - 1000,
    lastReply: '4.4.1 refused',
    notify: null,
    orcpt: null,
    warningsSent: 0,
    lastWarningAt: null,
    sender: 'someone@example.org',
    tlsRequired: null,
    receivedAt: NOW - 120_000,
    isBounce: false,
    ...o,
  };
}

function holdFor(profile: BounceProfile, o: Partial<ArrivalHold> = {}): ArrivalHold {
  return { until: NOW + 30_000, since: NOW - 30_000, enhanced: '4.4.1', reason: 'connection refused', profile, ...o };
}

test('a held destination’s due recipients are deferred at their next retry time, grouped; the rest are kept', () => {
  const holds = new Map<string, ArrivalHold>([
    [destinationKey('down.test', '', null), holdFor(DEFAULT_PROFILE)],
    [destinationKey('ended.test', '', null), holdFor(DEFAULT_PROFILE, { until: NOW })],
    [destinationKey('tls.test', '', 'requiretls'), holdFor(DEFAULT_PROFILE)],
  ]);
  const second = [row('down.test'), row('down.test')]; // one attempt made: the next wait is 120 s
  const third = row('down.test', { attempts: 2 }); // two made: 240 s
  const other = row('up.test');
  const ended = row('ended.test');
  const notHeldKey = row('tls.test'); // held only for REQUIRETLS mail
  const heldKey = row('tls.test', { tlsRequired: 'requiretls' });
  const r = deferDue([...second, third, other, ended, notHeldKey, heldKey], undefined, (k) => holds.get(k), NOW);

  assert.deepEqual(r.keep.map((x) => x.id).sort(), [other.id, ended.id, notHeldKey.id].sort());
  const byNext = new Map(r.deferred.map((g) => [g.nextAttempt - NOW, g]));
  assert.deepEqual([...byNext.keys()].sort((a, b) => a - b), [120_000, 240_000]);
  assert.deepEqual(byNext.get(120_000)!.ids.sort(), [...second, heldKey].map((x) => x.id).sort());
  assert.deepEqual(byNext.get(240_000)!.ids, [third.id]);
  for (const g of r.deferred) {
    assert.equal(g.enhanced, '4.4.1');
    assert.equal(g.reason, 'not tried: no host could be reached 30 s ago (connection refused)');
    assert.equal(g.reply, `4.4.1 ${g.reason}`);
    assert.deepEqual(g.rows.map((x) => x.id), g.ids);
  }
});

test('what must bounce or be warned about now is kept for the normal way, with its DSN', () => {
  const fewRetries: BounceProfile = { ...DEFAULT_PROFILE, maxRetries: 3 };
  const shortLife: BounceProfile = { ...DEFAULT_PROFILE, maxQueueSeconds: 60 };
  const warns: BounceProfile = { ...DEFAULT_PROFILE, delayWarnings: true, delayWarningInterval: 3600, delayWarningMax: 2 };
  const holds = new Map<string, ArrivalHold>([
    [destinationKey('few.test', '', null), holdFor(fewRetries)],
    [destinationKey('short.test', '', null), holdFor(shortLife)],
    [destinationKey('warn.test', '', null), holdFor(warns)],
  ]);
  const lastTry = row('few.test', { attempts: 2 }); // this would be the third and last attempt
  const notYet = row('few.test', { attempts: 1 });
  const tooOld = row('short.test', { receivedAt: NOW - 61_000 });
  const young = row('short.test', { receivedAt: NOW - 10_000 });
  const warnNow = row('warn.test', { attempts: 1 }); // second attempt: a warning is due
  const warnedRecently = row('warn.test', { attempts: 1, warningsSent: 1, lastWarningAt: NOW - 60_000 });
  const neverNotify = row('warn.test', { attempts: 1, notify: 'NEVER' });
  const aBounce = row('warn.test', { attempts: 1, isBounce: true, sender: '' });
  const r = deferDue([lastTry, notYet, tooOld, young, warnNow, warnedRecently, neverNotify, aBounce], undefined, (k) => holds.get(k), NOW);
  assert.deepEqual(r.keep.map((x) => x.id).sort(), [lastTry.id, tooOld.id, warnNow.id].sort());
  assert.deepEqual(r.deferred.flatMap((g) => g.ids).sort(), [notYet.id, young.id, warnedRecently.id, neverNotify.id, aBounce.id].sort());
});

test('nothing held: every row is kept', () => {
  const rows = [row('a.test'), row('b.test')];
  const r = deferDue(rows, undefined, () => undefined, NOW);
  assert.deepEqual(r.keep, rows);
  assert.deepEqual(r.deferred, []);
});
