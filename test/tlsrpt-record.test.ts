/** The `_smtp._tls` TXT record (RFC 8460 §3): where a domain wants its TLS reports. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTlsRptRecord, selectTlsRptRecord } from '../src/tlsrpt/record.js';

describe('the _smtp._tls reporting record', () => {
  test('mailto and https destinations, other schemes ignored, a percent-encoded comma kept', () => {
    assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.com/v1/tlsrpt'), {
      kind: 'record',
      destinations: [
        { kind: 'mailto', address: 'tls@example.com', uri: 'mailto:tls@example.com' },
        { kind: 'https', url: 'https://reports.example.com/v1/tlsrpt', uri: 'https://reports.example.com/v1/tlsrpt' },
      ],
    });
    const r = parseTlsRptRecord('v=TLSRPTv1;rua=ftp://x.example/,mailto:a%2Cb@example.com');
    assert.deepEqual(r.kind === 'record' ? r.destinations.map((d) => (d.kind === 'mailto' ? d.address : d.url)) : r, ['a,b@example.com']);
  });

  test('malformed records are no reporting, each with its reason', () => {
    for (const [txt, why] of [
      ['v=TLSRPTv2; rua=mailto:a@example.com', /does not begin with v=TLSRPTv1/],
      ['v=TLSRPTv1', /no rua= field/],
      ['v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com', /more than one rua= field/],
      ['v=TLSRPTv1; rua=http://insecure.example/', /names no mailto: or https: destination/],
    ] as const) {
      const r = parseTlsRptRecord(txt);
      assert.equal(r.kind, 'invalid', txt);
      assert.match(r.kind === 'invalid' ? r.reason : '', why);
    }
  });

  test('exactly one record among the TXT records; none, several, or a DNS failure', () => {
    const answer = (records: string[]) => ({ kind: 'answer' as const, records, authenticated: false, ttl: 60 });
    assert.equal(selectTlsRptRecord(answer(['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:a@example.com'])).kind, 'record');
    assert.deepEqual(selectTlsRptRecord(answer(['v=spf1 -all'])), { kind: 'none' });
    assert.deepEqual(selectTlsRptRecord({ kind: 'nxdomain', authenticated: false, ttl: 60 }), { kind: 'none' });
    assert.match(JSON.stringify(selectTlsRptRecord(answer(['v=TLSRPTv1; rua=mailto:a@example.com', 'v=TLSRPTv1; rua=mailto:b@example.com']))), /2 TXT records begin with v=TLSRPTv1/);
    assert.deepEqual(selectTlsRptRecord({ kind: 'temporary', reason: 'SERVFAIL' }), { kind: 'temporary', reason: 'SERVFAIL' });
  });
});
