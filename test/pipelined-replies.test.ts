/**
 * smtp-server-patches.ts item 5: the replies to a pipelined group (MAIL, RCPT…, DATA) leave the
 * listener in one socket write instead of one each, in their order, a refusal among them
 * included; a reply that is neither 250 nor 354 (a refusal, 221) is never held back. Observed on
 * the server's own socket (its `_write`/`_writev` calls: one per system call it makes), with a
 * real client socket on loopback.
 */
import assert from 'node:assert/strict';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import '../src/smtp/smtp-server-patches.js';
import { waitFor } from './harness.js';

type Writes = { calls: number };
type Spied = Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };

describe('replies to a pipelined group', () => {
  let server: SMTPServer;
  let port: number;
  const writes: Writes[] = [];

  before(async () => {
    server = new SMTPServer({
      name: 'mx.pipelined.test',
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onRcptTo(address, _session, cb) {
        if (address.address.startsWith('refused')) cb(Object.assign(new Error('5.1.1 <refused>: no such user'), { responseCode: 550 }));
        else cb();
      },
      onData(stream, _session, cb) {
        stream.resume();
        stream.on('end', () => cb(null));
      },
    });
    server.on('error', () => undefined);
    // Counts the write calls the server's side of each connection makes.
    (server as unknown as { server: { on: (e: 'connection', l: (s: Spied) => void) => void } }).server.on('connection', (s) => {
      const w: Writes = { calls: 0 };
      writes.push(w);
      for (const name of ['_write', '_writev'] as const) {
        const original = s[name].bind(s);
        s[name] = (...a: unknown[]) => {
          w.calls++;
          original(...a);
        };
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** Greeting and EHLO, then `text`; the reply codes to it and the server's write calls for them. */
  async function send(text: string, lines: number): Promise<{ codes: string[]; calls: number; socket: Socket; seen: () => string }> {
    const socket = connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    let seen = '';
    socket.on('data', (d: string) => (seen += d));
    const count = () => seen.match(/^\d{3} /gm)?.length ?? 0;
    await waitFor('the greeting', () => count() >= 1, 5_000);
    socket.write('EHLO client.test\r\n');
    await waitFor('the EHLO reply', () => count() >= 2, 5_000);
    const w = writes[writes.length - 1]!;
    const before = w.calls;
    const from = seen.length;
    socket.write(text);
    await waitFor(`${lines} replies`, () => count() >= 2 + lines, 5_000);
    return { codes: seen.slice(from).match(/^\d{3}/gm) ?? [], calls: w.calls - before, socket, seen: () => seen };
  }

  it('four replies, one write', async () => {
    const r = await send('MAIL FROM:<a@client.test>\r\nRCPT TO:<x@dest.test>\r\nRCPT TO:<y@dest.test>\r\nDATA\r\n', 4);
    r.socket.destroy();
    assert.deepEqual(r.codes, ['250', '250', '250', '354']);
    assert.equal(r.calls, 1);
  });

  it('a refusal among them keeps its place and is not held back', async () => {
    const r = await send('MAIL FROM:<a@client.test>\r\nRCPT TO:<x@dest.test>\r\nRCPT TO:<refused@dest.test>\r\nRCPT TO:<y@dest.test>\r\nDATA\r\n', 5);
    r.socket.destroy();
    assert.deepEqual(r.codes, ['250', '250', '550', '250', '354']);
    // What was held goes out before the refusal, the refusal at once, the rest together.
    assert.equal(r.calls, 3);
  });

  it('QUIT after a held reply: both arrive before the close', async () => {
    const r = await send('RSET\r\nQUIT\r\n', 2);
    await new Promise<void>((resolve) => (r.socket.closed ? resolve() : r.socket.once('close', () => resolve())));
    assert.deepEqual(r.codes, ['250', '221']);
  });
});
