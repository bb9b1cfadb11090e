/**
 * SPEC §2's table, every cell, for each of the six TLS settings, against real SMTP servers on
 * loopback: one destination domain per (setting, server behaviour), each with its own MX host
 * on its own 127.0.x.y address, all delivered by one gateway at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TLS_MODES, type TlsMode } from '../src/controls/types.js';
import { TestCA, selfSigned, type IssuedCert } from './peers/ca.js';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from './peers/smtp-peer.js';
import { fateOf, sendMail, startTestGateway, waitFor, type RecipientFate, type TestGateway } from './harness.js';

const PORT = 2601;

type Behaviour = 'no-starttls' | 'refuse-454' | 'handshake-close' | 'handshake-garbage' | 'inject' | 'self-signed' | 'expired' | 'wrong-name' | 'verified';
const BEHAVIOURS: Behaviour[] = ['no-starttls', 'refuse-454', 'handshake-close', 'handshake-garbage', 'inject', 'self-signed', 'expired', 'wrong-name', 'verified'];

/** What the recipient must see: delivered in clear text, delivered encrypted, or not delivered (deferred 4.7.x). */
type Expect = 'clear' | 'encrypted' | 'deferred';

// The contract, row by row (SPEC §2). Columns follow BEHAVIOURS.
const TABLE: Record<TlsMode, Expect[]> = {
  //                        none      454       hs-close    hs-garbage  inject      self-signed  expired      wrong-name   verified
  no: /*                 */ ['clear', 'clear', 'clear', 'clear', 'clear', 'clear', 'clear', 'clear', 'clear'],
  preferred: /*          */ ['clear', 'clear', 'deferred', 'deferred', 'deferred', 'encrypted', 'encrypted', 'encrypted', 'encrypted'],
  required: /*           */ ['deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'encrypted', 'encrypted', 'encrypted', 'encrypted'],
  'preferred-verify': /* */ ['clear', 'clear', 'deferred', 'deferred', 'deferred', 'encrypted', 'encrypted', 'encrypted', 'encrypted'],
  'required-verify': /*  */ ['deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'encrypted'],
  'required-verify-hosted': ['deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'deferred', 'encrypted'],
};

interface Cell {
  mode: TlsMode;
  behaviour: Behaviour;
  domain: string;
  mxHost: string;
  address: string;
  rcpt: string;
  expect: Expect;
  peer?: SmtpPeer;
}

describe('the six TLS settings (SPEC §2 table)', () => {
  let t: TestGateway;
  const cells: Cell[] = [];
  const certs: Record<string, IssuedCert> = {};

  before(async () => {
    const ca = await TestCA.create();
    const zone: Zone = {};
    TLS_MODES.forEach((mode, mi) => {
      BEHAVIOURS.forEach((behaviour, bi) => {
        const domain = `${behaviour}.${mode}.tls.test`;
        const mxHost = `mx.${domain}`;
        const address = `127.0.${10 + mi}.${10 + bi}`;
        zone[domain] = { MX: [{ preference: 10, exchange: mxHost }] };
        zone[mxHost] = { A: [address] };
        cells.push({ mode, behaviour, domain, mxHost, address, rcpt: `user@${domain}`, expect: TABLE[mode][bi]! });
      });
    });
    for (const c of cells) {
      const good = await ca.issue({ cn: c.mxHost, dnsNames: [c.domain, c.mxHost] });
      certs[c.domain] = good;
      let opts: SmtpPeerOptions = { host: c.address, port: PORT, hostname: c.mxHost };
      switch (c.behaviour) {
        case 'no-starttls':
          opts = { ...opts, starttls: 'none' };
          break;
        case 'refuse-454':
          opts = { ...opts, starttls: 'refuse' };
          break;
        case 'handshake-close':
          opts = { ...opts, starttls: 'handshake-close' };
          break;
        case 'handshake-garbage':
          opts = { ...opts, starttls: 'handshake-garbage' };
          break;
        case 'inject':
          opts = { ...opts, starttls: 'inject', cert: { keyPem: good.keyPem, certPem: good.chainPem } };
          break;
        case 'self-signed': {
          const s = await selfSigned({ cn: c.mxHost, dnsNames: [c.domain, c.mxHost] });
          opts = { ...opts, starttls: 'ok', cert: { keyPem: s.keyPem, certPem: s.chainPem } };
          break;
        }
        case 'expired': {
          const e = await ca.issue({
            cn: c.mxHost,
            dnsNames: [c.domain, c.mxHost],
            notBefore: new Date(Date.now() - 20 * 86400_000),
            notAfter: new Date(Date.now() - 10 * 86400_000),
          });
          opts = { ...opts, starttls: 'ok', cert: { keyPem: e.keyPem, certPem: e.chainPem } };
          break;
        }
        case 'wrong-name': {
          const w = await ca.issue({ cn: 'mx.other.invalid', dnsNames: ['mx.other.invalid'] });
          opts = { ...opts, starttls: 'ok', cert: { keyPem: w.keyPem, certPem: w.chainPem } };
          break;
        }
        case 'verified':
          opts = { ...opts, starttls: 'ok', cert: { keyPem: good.keyPem, certPem: good.chainPem } };
          break;
      }
      c.peer = await startSmtpPeer(opts);
    }
    t = await startTestGateway({
      zone,
      smtpPort: PORT,
      setup: (s) => {
        s.addAuthorities(ca.certPem);
        s.setGlobals({ brokenTlsMemoryHours: 0, useSystemAuthorities: false });
        for (const c of cells) s.newEntry(c.domain, { tls: c.mode });
      },
    });
    for (const c of cells) {
      const r = await sendMail(t.gw.address!.port, 'sender@client.test', [c.rcpt], `Subject: ${c.domain}\r\n\r\nBody for ${c.domain}\r\n`);
      assert.equal(r.code, 250, `accepted for ${c.domain}`);
    }
    await waitFor('every cell to reach an outcome', () => cells.every((c) => fateOf(t, c.rcpt) !== undefined), 30_000);
  });

  after(async () => {
    await t?.close();
    await Promise.all(cells.map((c) => c.peer?.close()));
  });

  for (const mode of TLS_MODES) {
    for (const behaviour of BEHAVIOURS) {
      const expect = TABLE[mode][BEHAVIOURS.indexOf(behaviour)]!;
      it(`${mode} × ${behaviour} → ${expect}`, async () => {
        const c = cells.find((x) => x.mode === mode && x.behaviour === behaviour)!;
        const fate = fateOf(t, c.rcpt) as RecipientFate;
        const peer = c.peer!;
        if (expect === 'deferred') {
          assert.equal(fate.kind, 'deferred', `not delivered: ${JSON.stringify(fate)}`);
          if (fate.kind === 'deferred') assert.match(fate.reply, /^4\.7\.\d+ /, 'a 4.7.x reason');
          assert.equal(peer.messages.length, 0, 'nothing reached the server');
        } else {
          assert.equal(fate.kind, 'delivered', `delivered: ${JSON.stringify(fate)}`);
          await peer.waitForMessages(1);
          assert.equal(peer.messages[0]!.tls, expect === 'encrypted', `arrived ${expect}`);
          assert.match(peer.messages[0]!.data.toString(), new RegExp(`Body for ${c.domain.replace(/\./g, '\\.')}`));
        }
        await peer.waitForSessions(1);
        for (const s of peer.sessions) {
          const cmds = s.commands;
          // Never a command after STARTTLS before the handshake.
          assert.ok(!cmds.includes('<PRE-TLS-BYTES>'), `no bytes before the handshake: ${cmds.join(' | ')}`);
          if (mode === 'no') assert.ok(!cmds.includes('STARTTLS'), 'No never sends STARTTLS');
          if (s.tls) {
            // SNI is the MX host name; EHLO again after the handshake before any mail.
            assert.equal(s.sni, c.mxHost);
            const tlsAt = cmds.indexOf('<TLS>');
            const next = cmds[tlsAt + 1] ?? '';
            if (expect === 'encrypted') assert.match(next, /^EHLO /, `EHLO right after the handshake: ${cmds.join(' | ')}`);
            else assert.equal(next, 'QUIT', `unverified under a Verify-required setting: QUIT at once: ${cmds.join(' | ')}`);
          }
          if (expect === 'deferred' && (behaviour === 'no-starttls' || behaviour === 'refuse-454' || s.tls)) {
            // Refused by policy on a working connection: QUIT politely, no MAIL.
            assert.equal(cmds[cmds.length - 1], 'QUIT', `QUIT when refused by policy: ${cmds.join(' | ')}`);
          }
          if (expect === 'deferred') assert.ok(!cmds.some((x) => x.startsWith('MAIL')), 'no MAIL FROM on a refused connection');
          if (behaviour === 'inject' || behaviour === 'handshake-close' || behaviour === 'handshake-garbage') {
            if (mode !== 'no') {
              // After 220: no clear-text fallback on that connection.
              const after220 = cmds.slice(cmds.indexOf('STARTTLS') + 1);
              assert.ok(!after220.some((x) => /^(MAIL|RCPT|DATA|EHLO)/.test(x)), `no clear-text fallback: ${cmds.join(' | ')}`);
            }
          }
        }
        // Each connection's TLS outcome is in the mail log.
        if (mode !== 'no') {
          const tlsEvents = t.events.filter(
            (e) => (e.event === 'tls-success' || e.event === 'tls-failed') && e.domain === c.domain,
          );
          assert.ok(tlsEvents.length >= 1, 'TLS outcome logged');
        }
        if ((behaviour === 'self-signed' || behaviour === 'expired' || behaviour === 'wrong-name') && mode === 'preferred-verify') {
          assert.ok(
            t.events.some((e) => e.event === 'verify-failed' && e.domain === c.domain),
            'Preferred - Verify logs the failed verification',
          );
        }
      });
    }
  }
});
