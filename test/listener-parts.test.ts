/**
 * Pure parts of the listener that run for every command or message: the relay networks check
 * (answered from a cache by client address) and the `TLS-Required: No` header test (a search of
 * the header section before it is split into fields).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkList } from '../src/smtp/networks.js';
import { hasTlsRequiredNo, tlsRequiredOf } from '../src/smtp/tls-required.js';

test('relay networks: the same answers asked once or many times, over more addresses than the cache holds', () => {
  const list = new NetworkList(['10.1.0.0/16', '2001:db8::/32', '192.0.2.7']);
  const expect = (a: string, ok: boolean): void => assert.equal(list.allows(a), ok, a);
  for (let round = 0; round < 2; round++) {
    expect('10.1.2.3', true);
    expect('::ffff:10.1.2.3', true);
    expect('10.2.0.1', false);
    expect('::ffff:10.2.0.1', false);
    expect('2001:db8::1', true);
    expect('2001:db9::1', false);
    expect('192.0.2.7', true);
    expect('192.0.2.8', false);
    expect('not an address', false);
    expect('', false);
  }
  // 3,000 distinct clients: the cache is bounded and refilled; every answer is still the list's.
  for (let i = 0; i < 3000; i++) {
    const inside = `10.1.${i >> 8}.${i & 255}`;
    const outside = `10.3.${i >> 8}.${i & 255}`;
    expect(inside, true);
    expect(outside, false);
  }
  expect('10.1.2.3', true);
  expect('10.2.0.1', false);
});

test('TLS-Required: No is found in the header section only, whatever its case and folding', () => {
  const msg = (s: string): Buffer => Buffer.from(s);
  assert.equal(hasTlsRequiredNo(msg('Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n')), true);
  assert.equal(hasTlsRequiredNo(msg('subject: x\r\ntls-required:   no  \r\n\r\nbody\r\n')), true);
  assert.equal(hasTlsRequiredNo(msg('Subject: x\r\nTLS-Required:\r\n No\r\n\r\nbody\r\n')), true, 'folded value');
  assert.equal(hasTlsRequiredNo(msg('Subject: x\nTLS-Required: No\n\nbody\n')), true, 'bare LF line ends');
  assert.equal(hasTlsRequiredNo(msg('Subject: x\r\nTLS-Required: Yes\r\n\r\nbody\r\n')), false);
  assert.equal(hasTlsRequiredNo(msg('Subject: TLS-Required: No\r\n\r\nbody\r\n')), false, 'in another field\'s value');
  assert.equal(hasTlsRequiredNo(msg('Subject: x\r\n\r\nTLS-Required: No\r\n')), false, 'in the body');
  assert.equal(hasTlsRequiredNo(msg('Subject: x\r\nX-TLS-Required: No\r\n\r\n')), false, 'another field name');
  assert.equal(hasTlsRequiredNo(msg('')), false);
  assert.equal(tlsRequiredOf(true, msg('TLS-Required: No\r\n\r\n')), 'requiretls', 'REQUIRETLS wins');
  assert.equal(tlsRequiredOf(false, msg('TLS-Required: No\r\n\r\n')), 'no');
  assert.equal(tlsRequiredOf(false, msg('Subject: x\r\n\r\n')), undefined);
});
