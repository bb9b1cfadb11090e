// Tests for the loopback test peers (CA, DNS server, SMTP peer), checked against Node's own
// clients (tls.connect, dns Resolver, raw sockets) so the other suites can trust them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import dnsPacket from 'dns-packet';
import type { DecodedPacket, MxData } from 'dns-packet';
import { TestCA, selfSigned, type IssuedCert } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from './peers/smtp-peer.js';
import { within } from './deadline.js';

const DAY_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------
// Certificate authority
// ---------------------------------------------------------------------------------------

interface TlsProbeResult {
  authorized: boolean;
  authorizationError: string | undefined;
  peer: tls.DetailedPeerCertificate;
  servernameSeen: string | false | null;
}

/** Serves `cert` with a real TLS server and reports what a verifying Node client concluded. */
async function tlsProbe(cert: IssuedCert, servername: string, ca: string[]): Promise<TlsProbeResult> {
  const server = tls.createServer({ key: cert.keyPem, cert: cert.chainPem });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    const serverSide = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
    // rejectUnauthorized: false so verification failures are reported instead of thrown.
    const client = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false });
    client.on('error', () => undefined);
    await once(client, 'secureConnect');
    const [accepted] = await serverSide;
    accepted.on('error', () => undefined);
    const result: TlsProbeResult = {
      authorized: client.authorized,
      // Node leaves null here when verification succeeded.
      authorizationError: client.authorizationError ? String(client.authorizationError) : undefined,
      peer: client.getPeerCertificate(true),
      servernameSeen: accepted.servername,
    };
    client.destroy();
    accepted.destroy();
    return result;
  } finally {
    server.close();
  }
}

describe('TestCA', () => {
  let ca: TestCA;
  before(async () => {
    ca = await TestCA.create('Peers Test Root');
  });

  it('creates a self-signed EC P-256 root with CA:TRUE', () => {
    const x = new X509Certificate(ca.certPem);
    assert.equal(x.ca, true);
    assert.equal(x.subject, 'CN=Peers Test Root');
    assert.equal(x.issuer, x.subject);
    assert.equal(x.checkIssued(x), true);
    assert.equal(x.publicKey.asymmetricKeyType, 'ec');
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('issues leaves Node verifies against the CA, with SANs, EKUs and PKCS#8 keys', async () => {
    const leaf = await ca.issue({ dnsNames: ['mx.test', 'xn--bcher-kva.test'], ipAddresses: ['127.0.0.1'] });
    const x = new X509Certificate(leaf.certPem);
    const root = new X509Certificate(ca.certPem);
    assert.equal(x.ca, false);
    assert.equal(x.subject, 'CN=mx.test');
    assert.equal(x.checkIssued(root), true);
    assert.equal(x.verify(root.publicKey), true);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(x.subjectAltName, 'DNS:mx.test, DNS:xn--bcher-kva.test, IP Address:127.0.0.1');
    assert.deepEqual(leaf.der, x.raw);
    assert.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(leaf.chainPem, leaf.certPem + ca.certPem);
    // Default validity: from a day ago to a year ahead.
    const from = new Date(x.validFrom).getTime();
    const to = new Date(x.validTo).getTime();
    assert.ok(Math.abs(from - (Date.now() - DAY_MS)) < 60_000, x.validFrom);
    assert.ok(Math.abs(to - (Date.now() + 365 * DAY_MS)) < 60_000, x.validTo);
  });

  it('is accepted by tls: authorized, SNI delivered, chain sent', async () => {
    const leaf = await ca.issue({ dnsNames: ['mx.test'] });
    const r = await tlsProbe(leaf, 'mx.test', [ca.certPem]);
    assert.equal(r.authorizationError, undefined);
    assert.equal(r.authorized, true);
    assert.equal(r.servernameSeen, 'mx.test');
    assert.equal(r.peer.subjectaltname, 'DNS:mx.test');
    assert.equal(r.peer.issuerCertificate.subject.CN, 'Peers Test Root');
  });

  it('gives CERT_HAS_EXPIRED for notAfter in the past', async () => {
    const leaf = await ca.issue({ dnsNames: ['mx.test'], notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
    const r = await tlsProbe(leaf, 'mx.test', [ca.certPem]);
    assert.equal(r.authorized, false);
    assert.equal(r.authorizationError, 'CERT_HAS_EXPIRED');
  });

  it('gives CERT_NOT_YET_VALID for notBefore in the future', async () => {
    const leaf = await ca.issue({ dnsNames: ['mx.test'], notBefore: new Date(Date.now() + DAY_MS) });
    const r = await tlsProbe(leaf, 'mx.test', [ca.certPem]);
    assert.equal(r.authorized, false);
    assert.equal(r.authorizationError, 'CERT_NOT_YET_VALID');
  });

  it('selfSigned gives DEPTH_ZERO_SELF_SIGNED_CERT and chainPem = certPem', async () => {
    const cert = await selfSigned({ dnsNames: ['mx.test'] });
    assert.equal(cert.chainPem, cert.certPem);
    const x = new X509Certificate(cert.certPem);
    assert.equal(x.issuer, x.subject);
    assert.equal(x.verify(x.publicKey), true);
    assert.equal(x.ca, false);
    const r = await tlsProbe(cert, 'mx.test', [ca.certPem]);
    assert.equal(r.authorized, false);
    assert.equal(r.authorizationError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('issues CN-only certificates without a subjectAltName extension', async () => {
    const leaf = await ca.issue({ cn: 'legacy.test' });
    assert.equal(new X509Certificate(leaf.certPem).subjectAltName, undefined);
    const r = await tlsProbe(leaf, 'legacy.test', [ca.certPem]);
    assert.equal(r.peer.subjectaltname, undefined);
    assert.equal(r.peer.subject.CN, 'legacy.test');
  });

  it('reports a name mismatch through the normal identity check', async () => {
    const leaf = await ca.issue({ dnsNames: ['mx.test'] });
    const r = await tlsProbe(leaf, 'other.test', [ca.certPem]);
    assert.equal(r.authorized, false);
    assert.equal(r.authorizationError, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('supports A-label IDN dNSNames', async () => {
    const leaf = await ca.issue({ dnsNames: ['xn--bcher-kva.test'] });
    const r = await tlsProbe(leaf, 'xn--bcher-kva.test', [ca.certPem]);
    assert.equal(r.authorized, true);
    assert.equal(r.peer.subjectaltname, 'DNS:xn--bcher-kva.test');
  });

  it('distinct CAs do not trust each other', async () => {
    const other = await TestCA.create('Other Root');
    const leaf = await other.issue({ dnsNames: ['mx.test'] });
    const r = await tlsProbe(leaf, 'mx.test', [ca.certPem]);
    assert.equal(r.authorized, false);
    // The server sends leaf + its own root, which the client does not trust.
    assert.equal(r.authorizationError, 'SELF_SIGNED_CERT_IN_CHAIN');
  });
});

// ---------------------------------------------------------------------------------------
// DNS server
// ---------------------------------------------------------------------------------------

function errorCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err ? String((err as NodeJS.ErrnoException).code) : undefined;
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(errorCode(err), code);
    return true;
  });
}

function bigMx(n: number): { preference: number; exchange: string }[] {
  return Array.from({ length: n }, (_, i) => ({ preference: i + 1, exchange: `mx${i + 1}.big-provider.test` }));
}

async function udpQuery(server: DnsServer, name: string, type: 'MX' | 'A'): Promise<{ raw: Buffer; packet: DecodedPacket }> {
  const sock = dgram.createSocket('udp4');
  try {
    const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
    sock.send(query, server.port, server.host);
    const [raw] = (await once(sock, 'message')) as [Buffer, dgram.RemoteInfo];
    return { raw, packet: dnsPacket.decode(raw) };
  } finally {
    sock.close();
  }
}

async function tcpQuery(server: DnsServer, name: string, type: 'MX' | 'A'): Promise<DecodedPacket> {
  const sock = net.connect(server.port, server.host);
  try {
    await once(sock, 'connect');
    sock.write(dnsPacket.streamEncode({ type: 'query', id: 4343, questions: [{ type, name }] }));
    let buf = Buffer.alloc(0);
    while (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) {
      const [chunk] = (await once(sock, 'data')) as [Buffer];
      buf = Buffer.concat([buf, chunk]);
    }
    return dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
  } finally {
    sock.destroy();
  }
}

describe('DNS server', () => {
  let server: DnsServer;
  let resolver: dns.promises.Resolver;
  before(async () => {
    server = await startDnsServer({
      zone: {
        'example.test': {
          MX: [
            { preference: 10, exchange: 'mx1.example.test' },
            { preference: 20, exchange: 'mx2.example.test' },
          ],
          A: ['192.0.2.1'],
          TXT: ['v=spf1 -all'],
        },
        'mx1.example.test': { A: ['192.0.2.10', '192.0.2.11'], AAAA: ['2001:db8::10'] },
        'null-mx.test': { MX: [{ preference: 0, exchange: '.' }] },
        'alias.test': { CNAME: 'mx1.example.test' },
        'dangling.test': { CNAME: 'missing.test' },
        'broken.test': { rcode: 'SERVFAIL' },
        'blackhole.test': { drop: true },
        'big.test': { MX: bigMx(40) },
        '2.0.0.127.in-addr.arpa': { PTR: ['mx.example.test'] },
      },
    });
    resolver = new dns.promises.Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([server.address]);
  });
  after(async () => {
    await server.close();
  });

  it('listens on loopback and reports a usable address', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.address, `127.0.0.1:${server.port}`);
  });

  it('answers MX, A, AAAA, TXT and PTR', async () => {
    const mx = await resolver.resolveMx('example.test');
    assert.deepEqual(
      mx.sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx1.example.test', priority: 10 },
        { exchange: 'mx2.example.test', priority: 20 },
      ],
    );
    assert.deepEqual((await resolver.resolve4('mx1.example.test')).sort(), ['192.0.2.10', '192.0.2.11']);
    assert.deepEqual(await resolver.resolve6('mx1.example.test'), ['2001:db8::10']);
    assert.deepEqual(await resolver.resolveTxt('example.test'), [['v=spf1 -all']]);
    assert.deepEqual(await resolver.reverse('127.0.0.2'), ['mx.example.test']);
    const seen = server.queries.map((q) => `${q.type} ${q.name}`);
    for (const q of ['MX example.test', 'A mx1.example.test', 'AAAA mx1.example.test', 'TXT example.test', 'PTR 2.0.0.127.in-addr.arpa']) {
      assert.ok(seen.includes(q), `${q} missing from ${seen.join(', ')}`);
    }
  });

  it('compares names case-insensitively', async () => {
    assert.deepEqual(await resolver.resolve4('MX1.Example.TEST'), ['192.0.2.10', '192.0.2.11']);
    assert.deepEqual(server.queries.at(-1), { name: 'mx1.example.test', type: 'A' });
  });

  it('delivers a Null MX as the root name (Node reports exchange "")', async () => {
    assert.deepEqual(await resolver.resolveMx('null-mx.test'), [{ exchange: '', priority: 0 }]);
    const { packet } = await udpQuery(server, 'null-mx.test', 'MX');
    const answer = packet.answers?.[0];
    assert.equal(answer?.type, 'MX');
    assert.deepEqual((answer as { data: MxData }).data, { preference: 0, exchange: '.' });
  });

  it('follows CNAMEs within the zone', async () => {
    assert.deepEqual((await resolver.resolve4('alias.test')).sort(), ['192.0.2.10', '192.0.2.11']);
    const { packet } = await udpQuery(server, 'alias.test', 'A');
    assert.deepEqual(
      packet.answers?.map((a) => a.type),
      ['CNAME', 'A', 'A'],
    );
    await rejectsWithCode(resolver.resolve4('dangling.test'), 'ENOTFOUND');
  });

  it('maps absent names, missing types, SERVFAIL and drops to Node error codes', async () => {
    await rejectsWithCode(resolver.resolveMx('nowhere.test'), 'ENOTFOUND');
    await rejectsWithCode(resolver.resolve6('example.test'), 'ENODATA');
    await rejectsWithCode(resolver.resolveMx('mx1.example.test'), 'ENODATA');
    await rejectsWithCode(resolver.resolveMx('broken.test'), 'ESERVFAIL');
    await rejectsWithCode(resolver.resolve4('blackhole.test'), 'ETIMEOUT');
    const { packet } = await udpQuery(server, 'nowhere.test', 'A');
    assert.equal(packet.flag_aa, true);
    assert.equal((packet as DecodedPacket & { rcode: string }).rcode, 'NXDOMAIN');
  });

  it('truncates UDP answers over 512 bytes and serves them in full over TCP', async () => {
    const udp = await udpQuery(server, 'big.test', 'MX');
    assert.equal(udp.packet.flag_tc, true);
    assert.ok(udp.raw.length <= 512, `UDP answer is ${udp.raw.length} bytes`);
    assert.ok((udp.packet.answers?.length ?? 0) < 40);
    assert.equal(udp.packet.id, 4242);

    const tcp = await tcpQuery(server, 'big.test', 'MX');
    assert.equal(tcp.flag_tc, false);
    assert.equal(tcp.id, 4343);
    assert.equal(tcp.answers?.length, 40);

    const before = server.queries.filter((q) => q.name === 'big.test').length;
    const mx = await resolver.resolveMx('big.test');
    assert.equal(mx.length, 40);
    assert.deepEqual(
      mx.map((m) => m.priority).sort((a, b) => a - b),
      bigMx(40).map((m) => m.preference),
    );
    // c-ares asked twice: UDP got TC, then TCP.
    assert.equal(server.queries.filter((q) => q.name === 'big.test').length - before, 2);
  });

  it('reads the zone live', async () => {
    await rejectsWithCode(resolver.resolve4('late.test'), 'ENOTFOUND');
    server.zone['late.test'] = { A: ['192.0.2.99'] };
    assert.deepEqual(await resolver.resolve4('late.test'), ['192.0.2.99']);
    server.zone['late.test'] = { rcode: 'SERVFAIL' };
    await rejectsWithCode(resolver.resolve4('late.test'), 'ESERVFAIL');
  });

  it('survives garbage datagrams', async () => {
    const sock = dgram.createSocket('udp4');
    sock.send(Buffer.from('not dns'), server.port, server.host);
    await new Promise((r) => setTimeout(r, 20));
    sock.close();
    assert.deepEqual(await resolver.resolve4('example.test'), ['192.0.2.1']);
  });

  it('closes both transports', async () => {
    const s = await startDnsServer({ zone: { 'a.test': { A: ['192.0.2.1'] } } });
    await s.close();
    const probe = net.connect(s.port, s.host);
    await assert.rejects(once(probe, 'connect'), (err: unknown) => errorCode(err) === 'ECONNREFUSED');
  });
});

// ---------------------------------------------------------------------------------------
// SMTP peer
// ---------------------------------------------------------------------------------------

interface Reply {
  code: number;
  lines: string[];
}

/** Minimal line-oriented SMTP client on raw sockets, able to switch to TLS mid-stream. */
class RawSmtp {
  socket: net.Socket;
  /** The TCP socket underneath, kept after a TLS upgrade so tests can reset it. */
  readonly tcp: net.Socket;
  /** Raw chunks as they arrived, to check how the peer split its writes. */
  readonly chunks: { at: number; data: Buffer }[] = [];
  private buf = '';
  private closed = false;
  private notify: (() => void) | undefined;
  private readonly onData = (c: Buffer): void => {
    this.chunks.push({ at: Date.now(), data: c });
    this.buf += c.toString('utf8');
    this.notify?.();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.notify?.();
  };

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.tcp = socket;
    this.attach(socket);
  }

  static async connect(peer: SmtpPeer): Promise<RawSmtp> {
    const sock = net.connect(peer.port, peer.host);
    sock.on('error', () => undefined);
    await once(sock, 'connect');
    return new RawSmtp(sock);
  }

  private attach(sock: net.Socket): void {
    sock.on('data', this.onData);
    sock.on('end', this.onClose);
    sock.on('close', this.onClose);
  }

  private detach(sock: net.Socket): void {
    sock.off('data', this.onData);
    sock.off('end', this.onClose);
    sock.off('close', this.onClose);
  }

  /** Unread text received so far (e.g. injected lines). */
  get pending(): string {
    return this.buf;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private takeReply(): Reply | undefined {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', pos);
      if (nl < 0) return undefined;
      const line = this.buf.slice(pos, nl);
      lines.push(line);
      pos = nl + 2;
      if (line.length < 4 || line[3] === ' ') break;
    }
    this.buf = this.buf.slice(pos);
    return { code: Number(lines[0]!.slice(0, 3)), lines };
  }

  async reply(timeoutMs = 3000): Promise<Reply> {
    const deadline = Date.now() + within(timeoutMs);
    for (;;) {
      const r = this.takeReply();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.notify = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.notify = undefined;
    }
  }

  send(text: string): void {
    this.socket.write(text);
  }

  async cmd(line: string): Promise<Reply> {
    this.send(`${line}\r\n`);
    return this.reply();
  }

  /** Runs a client handshake over the current socket; unread plaintext stays in `pending`. */
  async startTls(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const plain = this.socket;
    this.detach(plain);
    const secure = tls.connect({ ...opts, socket: plain });
    secure.on('error', () => undefined);
    const outcome = await Promise.race([
      once(secure, 'secureConnect').then(() => undefined),
      once(secure, 'error').then(([e]) => e as Error),
      once(secure, 'close').then(() => new Error('closed during handshake')),
    ]);
    if (outcome instanceof Error) throw outcome;
    this.socket = secure;
    this.attach(secure);
    return secure;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + within(timeoutMs);
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.notify = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.notify = undefined;
    }
  }
}

function ehloKeywords(r: Reply): string[] {
  return r.lines.slice(1).map((l) => l.slice(4));
}

describe('SMTP peer', () => {
  let ca: TestCA;
  let mxCert: IssuedCert;
  const peers: SmtpPeer[] = [];
  const start = async (opts: SmtpPeerOptions): Promise<SmtpPeer> => {
    const p = await startSmtpPeer(opts);
    peers.push(p);
    return p;
  };
  before(async () => {
    ca = await TestCA.create('SMTP Peer Test Root');
    mxCert = await ca.issue({ dnsNames: ['mx.test'] });
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
  });

  it('greets, lists default extensions and receives a dot-unstuffed message', async () => {
    const peer = await start({});
    const c = await RawSmtp.connect(peer);
    const greeting = await c.reply();
    assert.equal(greeting.code, 220);
    assert.match(greeting.lines[0]!, /^220 mx\.test /);
    const ehlo = await c.cmd('EHLO client.test');
    assert.equal(ehlo.code, 250);
    assert.equal(ehlo.lines[0], '250-mx.test');
    assert.deepEqual(ehloKeywords(ehlo), ['PIPELINING', 'SIZE 52428800', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES']);
    assert.equal((await c.cmd('MAIL FROM:<sender@client.test> SIZE=120 BODY=8BITMIME')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<rcpt@mx.test> NOTIFY=NEVER')).code, 250);
    assert.equal((await c.cmd('RCPT TO: <second@mx.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.send('Subject: hi\r\n\r\n..leading dot\r\n..\r\nnot.the end\r\n');
    assert.equal((await c.cmd('.')).lines[0], '250 2.0.0 queued');
    assert.equal((await c.cmd('QUIT')).code, 221);
    await c.waitClosed();
    await peer.waitForSessions(1);
    await peer.waitForMessages(1);

    const [msg] = peer.messages;
    assert.equal(msg?.from, 'sender@client.test');
    assert.deepEqual(msg?.to, ['rcpt@mx.test', 'second@mx.test']);
    assert.equal(msg?.data.toString(), 'Subject: hi\r\n\r\n.leading dot\r\n.\r\nnot.the end\r\n');
    assert.equal(msg?.tls, false);
    assert.equal(msg?.protocol, undefined);
    assert.equal(msg?.sessionId, 1);
    const [s] = peer.sessions;
    assert.equal(s?.id, 1);
    assert.equal(s?.remoteAddress, '127.0.0.1');
    assert.equal(s?.tls, false);
    assert.equal(s?.closedBy, 'server');
    assert.deepEqual(s?.commands, [
      'EHLO client.test',
      'MAIL FROM:<sender@client.test> SIZE=120 BODY=8BITMIME',
      'RCPT TO:<rcpt@mx.test> NOTIFY=NEVER',
      'RCPT TO: <second@mx.test>',
      'DATA',
      'QUIT',
    ]);
  });

  it('processes pipelined commands in order with scripted replies', async () => {
    const peer = await start({
      hostname: 'pipe.test',
      mailReply: (a) => (a === 'blocked@client.test' ? '550 5.7.1 sender blocked' : undefined),
      rcptReply: (a) => (a.startsWith('nouser') ? '550 5.1.1 no such user' : undefined),
    });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    assert.equal((await c.cmd('EHLO client.test')).lines[0], '250-pipe.test');
    c.send('MAIL FROM:<blocked@client.test>\r\nMAIL FROM:<ok@client.test>\r\nRCPT TO:<a@mx.test>\r\nRCPT TO:<nouser@mx.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n');
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) codes.push((await c.reply()).lines[0]!);
    assert.deepEqual(codes, [
      '550 5.7.1 sender blocked',
      '250 2.1.0 Ok',
      '250 2.1.5 Ok',
      '550 5.1.1 no such user',
      '250 2.1.5 Ok',
      '354 End data with <CR><LF>.<CR><LF>',
    ]);
    // Data, terminator and the next transaction in one write.
    c.send('x\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<c@mx.test>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n');
    const rest: number[] = [];
    for (let i = 0; i < 5; i++) rest.push((await c.reply()).code);
    assert.deepEqual(rest, [250, 250, 250, 354, 250]);
    assert.equal((await c.reply()).code, 221);
    await peer.waitForMessages(2);
    assert.deepEqual(
      peer.messages.map((m) => ({ from: m.from, to: m.to, data: m.data.toString() })),
      [
        { from: 'ok@client.test', to: ['a@mx.test', 'b@mx.test'], data: 'x\r\n' },
        { from: '', to: ['c@mx.test'], data: 'y\r\n' },
      ],
    );
  });

  it('enforces sequence: MAIL before EHLO, RCPT before MAIL, RSET, NOOP, unknown verbs', async () => {
    const peer = await start({});
    const c = await RawSmtp.connect(peer);
    await c.reply();
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 503);
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@mx.test>')).code, 503);
    assert.equal((await c.cmd('DATA')).code, 503);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 503);
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@mx.test>')).code, 503);
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test> SIZE=52428801')).code, 552);
    assert.equal((await c.cmd('VRFY x')).code, 500);
    assert.equal((await c.cmd('STARTTLS')).code, 502);
    c.socket.destroy();
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.closedBy, 'client');
    assert.equal(peer.messages.length, 0);
  });

  it('ehlo:false answers EHLO 502 and accepts HELO', async () => {
    const peer = await start({ ehlo: false, hostname: 'old.test' });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    assert.equal((await c.cmd('EHLO client.test')).code, 502);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 503);
    assert.deepEqual((await c.cmd('HELO client.test')).lines, ['250 old.test']);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
  });

  it("'refuse' advertises STARTTLS and answers 454", async () => {
    const peer = await start({ starttls: 'refuse', extensions: ['8BITMIME'] });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    assert.deepEqual(ehloKeywords(await c.cmd('EHLO client.test')), ['8BITMIME', 'STARTTLS']);
    assert.deepEqual((await c.cmd('STARTTLS')).lines, ['454 4.7.0 TLS not available']);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
  });

  it("'ok' upgrades with the given cert, records SNI/protocol/cipher and resets state", async () => {
    const peer = await start({ starttls: 'ok', cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem } });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    assert.ok(ehloKeywords(await c.cmd('EHLO client.test')).includes('STARTTLS'));
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    const secure = await c.startTls({ servername: 'mx.test', ca: [ca.certPem] });
    assert.equal(secure.authorized, true);
    const protocol = secure.getProtocol();
    const cipher = secure.getCipher().name;
    // RFC 3207: state is reset, so MAIL needs a fresh EHLO, which no longer offers STARTTLS.
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 503);
    const ehlo = await c.cmd('EHLO client.test');
    assert.equal(ehlo.code, 250);
    assert.ok(!ehloKeywords(ehlo).includes('STARTTLS'));
    assert.equal((await c.cmd('STARTTLS')).code, 503);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<r@mx.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    assert.equal((await c.cmd('secret\r\n.')).code, 250);
    assert.equal((await c.cmd('QUIT')).code, 221);
    await peer.waitForSessions(1);

    const [s] = peer.sessions;
    assert.equal(s?.tls, true);
    assert.equal(s?.sni, 'mx.test');
    assert.equal(s?.closedBy, 'server'); // QUIT over TLS
    assert.deepEqual(s?.commands.slice(0, 5), ['EHLO client.test', 'STARTTLS', '<TLS>', 'MAIL FROM:<a@b.test>', 'EHLO client.test']);
    assert.ok(!s?.commands.includes('<PRE-TLS-BYTES>'));
    const [m] = peer.messages;
    assert.equal(m?.tls, true);
    assert.equal(m?.protocol, protocol);
    assert.equal(m?.cipher, cipher);
    assert.equal(m?.data.toString(), 'secret\r\n');
  });

  it('records no SNI when the client sends none', async () => {
    const peer = await start({ starttls: 'ok', cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem } });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    await c.cmd('STARTTLS');
    // An empty servername makes Node omit the SNI extension.
    await c.startTls({ servername: '', rejectUnauthorized: false });
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    c.socket.end();
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.tls, true);
    assert.equal(peer.sessions[0]?.sni, undefined);
    assert.equal(peer.sessions[0]?.closedBy, 'client');
  });

  it('never executes bytes pipelined after STARTTLS, and marks them', async () => {
    const peer = await start({ starttls: 'ok', cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem } });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    c.send('STARTTLS\r\nMAIL FROM:<smuggled@evil.test>\r\n');
    assert.equal((await c.reply()).code, 220);
    assert.equal(c.pending, '', 'no reply may be sent for the smuggled command');
    await c.startTls({ servername: 'mx.test', ca: [ca.certPem] });
    assert.equal((await c.cmd('EHLO again.test')).code, 250);
    assert.equal((await c.cmd('QUIT')).code, 221);
    await peer.waitForSessions(1);
    assert.deepEqual(peer.sessions[0]?.commands, ['EHLO client.test', 'STARTTLS', '<PRE-TLS-BYTES>', '<TLS>', 'EHLO again.test', 'QUIT']);
  });

  it("'handshake-close' closes right after 220 and a TLS client fails", async () => {
    const peer = await start({ starttls: 'handshake-close' });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await assert.rejects(c.startTls({ servername: 'mx.test', ca: [ca.certPem] }));
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.closedBy, 'server');
    assert.equal(peer.sessions[0]?.tls, false);
  });

  it("'handshake-garbage' sends non-TLS bytes in a separate, later write and closes", async () => {
    const peer = await start({ starttls: 'handshake-garbage' });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    const sentAt = c.chunks.length;
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.waitClosed();
    const after = c.chunks.slice(sentAt);
    assert.equal(after.length, 2, 'the 220 and the garbage arrive as separate chunks');
    assert.equal(after[0]!.data.toString(), '220 2.0.0 Ready to start TLS\r\n');
    assert.ok(after[1]!.at - after[0]!.at >= 30, `garbage came after ${after[1]!.at - after[0]!.at} ms`);
    assert.notEqual(after[1]!.data[0], 0x16, 'not a TLS handshake record');
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.closedBy, 'server');

    // A real TLS client gets a handshake error, not a connection.
    const c2 = await RawSmtp.connect(peer);
    await c2.reply();
    await c2.cmd('EHLO client.test');
    await c2.cmd('STARTTLS');
    await assert.rejects(c2.startTls({ servername: 'mx.test', ca: [ca.certPem] }));
  });

  it("'inject' sends 220 and an injected 250 in one write, then handshakes", async () => {
    const peer = await start({ starttls: 'inject', cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem } });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    const sentAt = c.chunks.length;
    assert.equal((await c.cmd('STARTTLS')).lines[0], '220 Ready');
    assert.equal(c.chunks.length - sentAt, 1);
    assert.equal(c.chunks[sentAt]!.data.toString(), '220 Ready\r\n250 injected\r\n');
    assert.equal(c.pending, '250 injected\r\n');
    await c.startTls({ servername: 'mx.test', ca: [ca.certPem] });
    // The injected line is still in the plaintext buffer; a correct client discards it.
    assert.equal(c.pending, '250 injected\r\n');
    const ehlo = await c.cmd('EHLO client.test');
    assert.deepEqual(ehlo.lines, ['250 injected']);
    assert.equal((await c.reply()).code, 250); // the real EHLO answer follows
    c.socket.end();
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.tls, true);
    assert.equal(peer.sessions[0]?.sni, 'mx.test');
  });

  it('dataReply rejections record nothing; a 421 closes the session', async () => {
    let dataAnswer: string | undefined = '554 5.7.1 content rejected';
    const peer = await start({ dataReply: () => dataAnswer, rcptReply: (a) => (a === 'bye@mx.test' ? '421 4.3.2 shutting down' : undefined) });
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@b.test>');
    await c.cmd('RCPT TO:<r@mx.test>');
    await c.cmd('DATA');
    assert.deepEqual((await c.cmd('body\r\n.')).lines, ['554 5.7.1 content rejected']);
    assert.equal(peer.messages.length, 0);
    dataAnswer = undefined;
    await c.cmd('MAIL FROM:<a@b.test>');
    await c.cmd('RCPT TO:<r@mx.test>');
    await c.cmd('DATA');
    assert.equal((await c.cmd('body\r\n.')).code, 250);
    assert.equal(peer.messages.length, 1);
    await c.cmd('MAIL FROM:<a@b.test>');
    assert.equal((await c.cmd('RCPT TO:<bye@mx.test>')).code, 421);
    await c.waitClosed();
    await peer.waitForSessions(1);
    assert.equal(peer.sessions[0]?.closedBy, 'server');
  });

  it('survives connection resets and keeps serving', async () => {
    const peer = await start({ starttls: 'ok', cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem } });
    const c1 = await RawSmtp.connect(peer);
    await c1.reply();
    c1.send('EHLO client.test\r\nMAIL FR');
    await c1.reply();
    c1.socket.resetAndDestroy();
    const c2 = await RawSmtp.connect(peer);
    await c2.reply();
    await c2.cmd('EHLO client.test');
    await c2.cmd('STARTTLS');
    await c2.startTls({ servername: 'mx.test', ca: [ca.certPem] });
    c2.tcp.resetAndDestroy();
    await peer.waitForSessions(2);
    assert.deepEqual(
      peer.sessions.map((s) => s.closedBy),
      ['client', 'client'],
    );
    const c3 = await RawSmtp.connect(peer);
    assert.equal((await c3.reply()).code, 220);
  });

  it('close() ends open sessions; waits time out with a clear error', async () => {
    const peer = await startSmtpPeer({});
    const c = await RawSmtp.connect(peer);
    await c.reply();
    await assert.rejects(peer.waitForMessages(1, 50), /timed out after \d+ ms waiting for 1 messages \(have 0\)/);
    await assert.rejects(peer.waitForSessions(1, 50), /waiting for 1 closed sessions \(have 0\)/);
    await peer.close();
    await c.waitClosed();
    assert.equal(peer.sessions[0]?.closedBy, 'server');
    const probe = net.connect(peer.port, peer.host);
    await assert.rejects(once(probe, 'connect'), (err: unknown) => errorCode(err) === 'ECONNREFUSED');
  });

  it('refuses to start ok/inject without a certificate', async () => {
    await assert.rejects(startSmtpPeer({ starttls: 'ok' }), /needs opts\.cert/);
    await assert.rejects(startSmtpPeer({ starttls: 'inject' }), /needs opts\.cert/);
  });
});
