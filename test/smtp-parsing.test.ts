/**
 * Proves the pure parsing and ordering pieces under the SMTP client and the router, as golden
 * tables of input → exact output:
 *   - src/smtp/reply.ts: parseReplyLine, enhancedOf, parseEhlo (multi-line, a bare `250`, and
 *     smtp-sink's EHLO reply that ends with an empty `250 ` line);
 *   - src/smtp/client.ts dotStuff: leading dots doubled, bare LF → CRLF, the terminating
 *     `.\r\n`, a body without a final newline, an empty body;
 *   - src/dns/select.ts: orderMx (by preference, equal preferences shuffled by an injected
 *     random), isNullMx (RFC 7505), orderAddresses for the four IP preferences;
 *   - src/config/options.ts: parseHostPort and parseRouteHost, good and bad inputs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseHostPort, parseRouteHost } from '../src/config/options.js';
import { ValidationError } from '../src/controls/validate.js';
import { isNullMx, orderAddresses, orderMx, type AddressChoice, type MxRecord } from '../src/dns/select.js';
import { dotStuff } from '../src/smtp/client.js';
import { enhancedOf, parseEhlo, parseReplyLine, replyText, type LineParse, type Reply } from '../src/smtp/reply.js';

describe('parseReplyLine', () => {
  const GOLDEN: [string, LineParse][] = [
    ['250 OK', { kind: 'line', code: 250, last: true, text: 'OK' }],
    ['250-PIPELINING', { kind: 'line', code: 250, last: false, text: 'PIPELINING' }],
    ['250', { kind: 'line', code: 250, last: true, text: '' }],
    ['250 ', { kind: 'line', code: 250, last: true, text: '' }],
    ['250-', { kind: 'line', code: 250, last: false, text: '' }],
    ['220 mx.test ESMTP ready', { kind: 'line', code: 220, last: true, text: 'mx.test ESMTP ready' }],
    ['354 End data with <CR><LF>.<CR><LF>', { kind: 'line', code: 354, last: true, text: 'End data with <CR><LF>.<CR><LF>' }],
    ['421 4.3.2 shutting down', { kind: 'line', code: 421, last: true, text: '4.3.2 shutting down' }],
    ['550-5.1.1 first', { kind: 'line', code: 550, last: false, text: '5.1.1 first' }],
    ['554  two spaces', { kind: 'line', code: 554, last: true, text: ' two spaces' }],
    ['250X', { kind: 'bad', line: '250X' }],
    ['2500', { kind: 'bad', line: '2500' }],
    ['25', { kind: 'bad', line: '25' }],
    ['', { kind: 'bad', line: '' }],
    ['OK 250', { kind: 'bad', line: 'OK 250' }],
    ['199 too low', { kind: 'bad', line: '199 too low' }],
    ['600 too high', { kind: 'bad', line: '600 too high' }],
    ['abc hello', { kind: 'bad', line: 'abc hello' }],
    [' 250 OK', { kind: 'bad', line: ' 250 OK' }],
  ];
  for (const [line, expected] of GOLDEN) {
    test(JSON.stringify(line), () => assert.deepEqual(parseReplyLine(line), expected));
  }
});

describe('enhancedOf', () => {
  const GOLDEN: [string, string | undefined][] = [
    ['5.1.1 no such user', '5.1.1'],
    ['2.0.0 Ok: queued as ABC', '2.0.0'],
    ['4.7.0 TLS not available', '4.7.0'],
    ['5.1.10 Null MX', '5.1.10'],
    ['5.123.456 long parts', '5.123.456'],
    ['2.0.0', '2.0.0'],
    ['2.0.0\tTab', '2.0.0'],
    ['3.1.1 class 3 does not exist', undefined],
    ['5.1 short', undefined],
    ['5.1.1234 too long', undefined],
    ['5.1.1x glued', undefined],
    ['ok 5.1.1', undefined],
    ['', undefined],
  ];
  for (const [text, expected] of GOLDEN) {
    test(`${JSON.stringify(text)} → ${String(expected)}`, () => assert.equal(enhancedOf(text), expected));
  }
});

describe('parseEhlo', () => {
  const ext = (r: Reply) => Object.fromEntries(parseEhlo(r));

  test('multi-line EHLO: keywords upper-cased with their parameters; the greeting line is not a keyword', () => {
    const r: Reply = { code: 250, lines: ['mx.test Hello client', 'PIPELINING', 'SIZE 10240000', 'starttls', 'AUTH PLAIN  LOGIN', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8'] };
    assert.deepEqual(ext(r), {
      PIPELINING: '',
      SIZE: '10240000',
      STARTTLS: '',
      AUTH: 'PLAIN LOGIN',
      '8BITMIME': '',
      ENHANCEDSTATUSCODES: '',
      DSN: '',
      SMTPUTF8: '',
    });
  });

  test("smtp-sink's EHLO reply, ending with an empty `250 ` line", () => {
    // What smtp-sink sends: 250-host / 250-PIPELINING / … / 250-STARTTLS / "250 "
    const r: Reply = { code: 250, lines: ['sink.test', 'PIPELINING', '8BITMIME', 'AUTH PLAIN LOGIN', 'XCLIENT NAME HELO', 'STARTTLS', ''] };
    assert.deepEqual(ext(r), { PIPELINING: '', '8BITMIME': '', AUTH: 'PLAIN LOGIN', XCLIENT: 'NAME HELO', STARTTLS: '' });
  });

  test('a bare `250` (no extensions, not even a greeting text)', () => {
    assert.deepEqual(ext({ code: 250, lines: [''] }), {});
    assert.deepEqual(ext({ code: 250, lines: [] }), {});
  });

  test('a single-line EHLO reply has no extensions', () => {
    assert.deepEqual(ext({ code: 250, lines: ['mx.test'] }), {});
  });

  test('replies parsed line by line then assembled give the same extensions', () => {
    const wire = ['250-sink.test', '250-PIPELINING', '250-SIZE 1000', '250-STARTTLS', '250 '];
    const parsed = wire.map(parseReplyLine);
    const lines: string[] = [];
    for (const p of parsed) {
      assert.equal(p.kind, 'line');
      if (p.kind === 'line') lines.push(p.text);
    }
    assert.deepEqual(
      parsed.map((p) => p.kind === 'line' && p.last),
      [false, false, false, false, true],
    );
    assert.deepEqual(ext({ code: 250, lines }), { PIPELINING: '', SIZE: '1000', STARTTLS: '' });
  });

  test('replyText joins the lines', () => {
    assert.equal(replyText({ code: 550, enhanced: '5.1.1', lines: ['5.1.1 no such', 'user here'] }), '550 5.1.1 no such / user here');
    assert.equal(replyText({ code: 250, lines: [''] }), '250');
  });
});

describe('dotStuff', () => {
  // body as given → bytes sent after DATA (including the terminating line)
  const GOLDEN: [string, string, string][] = [
    ['CRLF body with final newline', 'a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
    ['body without final newline', 'a\r\nb', 'a\r\nb\r\n.\r\n'],
    ['bare LF → CRLF', 'a\nb\n', 'a\r\nb\r\n.\r\n'],
    ['bare LF, no final newline', 'a\nb', 'a\r\nb\r\n.\r\n'],
    ['mixed line ends', 'a\r\nb\nc\r\n', 'a\r\nb\r\nc\r\n.\r\n'],
    ['leading dot on first line', '.hidden\r\n', '..hidden\r\n.\r\n'],
    ['leading dot after CRLF', 'a\r\n.b\r\n', 'a\r\n..b\r\n.\r\n'],
    ['leading dot after bare LF', 'a\n.b\n', 'a\r\n..b\r\n.\r\n'],
    ['a line that is only a dot', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['two dots stay doubled once more', '..\r\n', '...\r\n.\r\n'],
    ['a dot not at line start is left alone', 'a.b\r\nc .d\r\n', 'a.b\r\nc .d\r\n.\r\n'],
    ['dot as the whole body, no newline', '.', '..\r\n.\r\n'],
    ['dot at the end without newline', 'a\r\n.', 'a\r\n..\r\n.\r\n'],
    ['a lone LF', '\n', '\r\n.\r\n'],
    ['empty lines kept', 'a\r\n\r\n\r\nb\r\n', 'a\r\n\r\n\r\nb\r\n.\r\n'],
    ['bare CR is not a line end', 'a\rb\r\n', 'a\rb\r\n.\r\n'],
    ['CRLF.CRLF inside the body cannot end DATA early', 'x\r\n.\r\n.\r\n', 'x\r\n..\r\n..\r\n.\r\n'],
    // An empty body has no last line to terminate: only the `.` line is sent.
    ['empty body', '', '.\r\n'],
  ];
  for (const [name, body, wire] of GOLDEN) {
    test(`${name}: ${JSON.stringify(body)} → ${JSON.stringify(wire)}`, () => {
      assert.equal(Buffer.concat(dotStuff(Buffer.from(body, 'latin1'))).toString('latin1'), wire);
    });
  }

  test('8-bit bytes pass unchanged', () => {
    const body = Buffer.from([0xc3, 0xa9, 0x0a, 0x2e, 0xff, 0x0d, 0x0a]);
    assert.deepEqual(Buffer.concat(dotStuff(body)), Buffer.from([0xc3, 0xa9, 0x0d, 0x0a, 0x2e, 0x2e, 0xff, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]));
  });

  test('a body that needs no change is sent as it is, not copied; one that does is one new buffer', () => {
    const clean = Buffer.from('Subject: x\r\n\r\nline one\r\nline .two\r\n');
    const pieces = dotStuff(clean);
    assert.equal(pieces.length, 2);
    assert.equal(pieces[0], clean, 'the stored body itself');
    assert.equal(pieces[1]!.toString(), '.\r\n');
    const unterminated = dotStuff(Buffer.from('a\r\nb'));
    assert.deepEqual(unterminated.map((p) => p.toString()), ['a\r\nb', '\r\n.\r\n']);
    const dotted = dotStuff(Buffer.from('a\r\n.b\r\n'));
    assert.equal(dotted.length, 1);
    assert.equal(dotted[0]!.toString(), 'a\r\n..b\r\n.\r\n');
  });
});

/** A deterministic "random" that returns the given values in turn. */
function sequence(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('orderMx', () => {
  const names = (hosts: { name: string }[]) => hosts.map((h) => h.name);

  test('orders by preference, lowest first; names lower-cased without trailing dot', () => {
    const records: MxRecord[] = [
      { exchange: 'MX30.test.', priority: 30 },
      { exchange: 'mx10.test', priority: 10 },
      { exchange: 'mx20.test', priority: 20 },
    ];
    assert.deepEqual(orderMx(records, 25, () => 0), [
      { name: 'mx10.test', port: 25, preference: 10, source: 'mx' },
      { name: 'mx20.test', port: 25, preference: 20, source: 'mx' },
      { name: 'mx30.test', port: 25, preference: 30, source: 'mx' },
    ]);
  });

  test('equal preferences are shuffled by the injected random, never across preferences', () => {
    const records: MxRecord[] = [
      { exchange: 'b1.test', priority: 20 },
      { exchange: 'a1.test', priority: 10 },
      { exchange: 'a2.test', priority: 10 },
      { exchange: 'a3.test', priority: 10 },
      { exchange: 'b2.test', priority: 20 },
    ];
    // Fisher–Yates from the end: random ~1 keeps the order, random 0 rotates.
    assert.deepEqual(names(orderMx(records, 25, () => 0.999999)), ['a1.test', 'a2.test', 'a3.test', 'b1.test', 'b2.test']);
    assert.deepEqual(names(orderMx(records, 25, () => 0)), ['a2.test', 'a3.test', 'a1.test', 'b2.test', 'b1.test']);

    // Over many draws every permutation of the preference-10 group appears, and the
    // preference-20 hosts always come after all preference-10 hosts.
    const seen = new Set<string>();
    let seed = 1;
    const lcg = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 300; i++) {
      const order = orderMx(records, 25, lcg);
      assert.deepEqual(
        order.map((h) => h.preference),
        [10, 10, 10, 20, 20],
      );
      seen.add(names(order).slice(0, 3).join(','));
    }
    assert.equal(seen.size, 6, `permutations seen: ${[...seen].join(' | ')}`);
  });

  test('the same random sequence gives the same order (deterministic under injection)', () => {
    const records: MxRecord[] = ['a', 'b', 'c', 'd'].map((n) => ({ exchange: `${n}.test`, priority: 5 }));
    const r = [0.3, 0.7, 0.1];
    assert.deepEqual(names(orderMx(records, 25, sequence(r))), names(orderMx(records, 25, sequence(r))));
  });

  test('duplicate exchanges at one preference are tried once; the input is not modified', () => {
    const records: MxRecord[] = [
      { exchange: 'mx.test', priority: 10 },
      { exchange: 'MX.test.', priority: 10 },
    ];
    const copy = structuredClone(records);
    assert.deepEqual(names(orderMx(records, 2525, () => 0)), ['mx.test']);
    assert.deepEqual(records, copy);
  });

  test('no records → no hosts', () => {
    assert.deepEqual(orderMx([], 25), []);
  });
});

describe('isNullMx (RFC 7505)', () => {
  const GOLDEN: [string, MxRecord[], boolean][] = [
    ['single root exchange (as node:dns gives it)', [{ exchange: '', priority: 0 }], true],
    ['single "." exchange', [{ exchange: '.', priority: 0 }], true],
    ['no records (implicit MX, not Null MX)', [], false],
    ['a real host', [{ exchange: 'mx.test', priority: 0 }], false],
    ['root plus a real host is not a Null MX', [{ exchange: '', priority: 0 }, { exchange: 'mx.test', priority: 10 }], false],
  ];
  for (const [name, records, expected] of GOLDEN) {
    test(`${name} → ${expected}`, () => assert.equal(isNullMx(records), expected));
  }
});

describe('orderAddresses', () => {
  const V6 = ['2001:db8::1', '2001:db8::2'];
  const V4 = ['192.0.2.1', '192.0.2.2'];
  const six = V6.map((address) => ({ address, family: 6 as const }));
  const four = V4.map((address) => ({ address, family: 4 as const }));

  const GOLDEN: [string, string[], string[], Parameters<typeof orderAddresses>[2], AddressChoice][] = [
    ['IPv6 Preferred', V6, V4, 'ipv6-preferred', { ok: true, addresses: [...six, ...four] }],
    ['IPv4 Preferred', V6, V4, 'ipv4-preferred', { ok: true, addresses: [...four, ...six] }],
    ['IPv6 Required', V6, V4, 'ipv6-required', { ok: true, addresses: six }],
    ['IPv4 Required', V6, V4, 'ipv4-required', { ok: true, addresses: four }],
    ['IPv6 Preferred, v4 only: falls back', [], V4, 'ipv6-preferred', { ok: true, addresses: four }],
    ['IPv4 Preferred, v6 only: falls back', V6, [], 'ipv4-preferred', { ok: true, addresses: six }],
    ['IPv6 Required, v4 only', [], V4, 'ipv6-required', { ok: false, reason: 'IPv6 Required but the host has no IPv6 address' }],
    ['IPv4 Required, v6 only', V6, [], 'ipv4-required', { ok: false, reason: 'IPv4 Required but the host has no IPv4 address' }],
    ['IPv6 Preferred, no address at all', [], [], 'ipv6-preferred', { ok: true, addresses: [] }],
  ];
  for (const [name, v6, v4, pref, expected] of GOLDEN) {
    test(name, () => assert.deepEqual(orderAddresses(v6, v4, pref), expected));
  }
});

describe('parseHostPort', () => {
  // [field, value, defaultPort, allowAnyPort] → result
  const GOOD: [string, number | undefined, boolean, { host: string; port: number }][] = [
    ['127.0.0.1:2525', undefined, false, { host: '127.0.0.1', port: 2525 }],
    ['localhost:25', undefined, false, { host: 'localhost', port: 25 }],
    ['[::1]:25', undefined, false, { host: '::1', port: 25 }],
    ['[2001:db8::1]:65535', undefined, false, { host: '2001:db8::1', port: 65535 }],
    ['[::1]', 53, false, { host: '::1', port: 53 }],
    ['::1', 53, false, { host: '::1', port: 53 }],
    ['2001:db8::53', 53, false, { host: '2001:db8::53', port: 53 }],
    ['10.0.0.53', 53, false, { host: '10.0.0.53', port: 53 }],
    ['dns.test:5353', 53, false, { host: 'dns.test', port: 5353 }],
    ['127.0.0.1:0', undefined, true, { host: '127.0.0.1', port: 0 }],
    ['host:1', undefined, false, { host: 'host', port: 1 }],
  ];
  for (const [value, def, anyPort, expected] of GOOD) {
    test(`${value} (default ${String(def)}${anyPort ? ', any port' : ''}) → ${expected.host} ${expected.port}`, () => {
      assert.deepEqual(parseHostPort('listen', value, def, anyPort), expected);
    });
  }

  const BAD: [string, number | undefined, boolean][] = [
    ['', undefined, false],
    ['localhost', undefined, false], //  no port and no default
    ['::1', undefined, false],
    ['host:0', undefined, false], //     port 0 only for a listener that asks for any port
    ['host:65536', undefined, false],
    ['host:-1', undefined, false],
    ['host:abc', undefined, false],
    ['host:', 25, false],
    ['[::1', undefined, false],
    ['[::1]:', undefined, false],
    ['[]:25', undefined, false],
    ['a:b:c', undefined, false],
    // Not a host: a bare "IPv6" form must be an IPv6 address, not any run of hex digits and colons.
    [':53', 53, false],
    ['beef:', 53, false],
    ['dead:beef', 53, false],
    ['[example.com]:25', undefined, false], // brackets hold an IPv6 address only
    ['[192.0.2.1]:25', undefined, false],
  ];
  for (const [value, def, anyPort] of BAD) {
    test(`rejects ${JSON.stringify(value)} (default ${String(def)}) naming field and value`, () => {
      assert.throws(
        () => parseHostPort('dns-server', value, def, anyPort),
        (e: unknown) => e instanceof ValidationError && e.field === 'dns-server' && e.message.includes('dns-server') && e.message.includes(JSON.stringify(value)),
      );
    });
  }
});

describe('parseRouteHost', () => {
  const GOOD: [string, { host: string; port?: number }][] = [
    ['mx.example.com', { host: 'mx.example.com' }],
    ['MX.Example.COM', { host: 'mx.example.com' }],
    ['mx.example.com:2525', { host: 'mx.example.com', port: 2525 }],
    [' mx.test:25 ', { host: 'mx.test', port: 25 }],
    ['10.0.0.1', { host: '10.0.0.1' }],
    ['10.0.0.1:26', { host: '10.0.0.1', port: 26 }],
    ['::1', { host: '::1' }],
    ['2001:db8::25', { host: '2001:db8::25' }],
    ['[::1]:2525', { host: '::1', port: 2525 }],
    ['localhost', { host: 'localhost' }],
    ['mx.bücher.test', { host: 'mx.xn--bcher-kva.test' }], // the one name rule: A-label form
    ['mx.example.com.', { host: 'mx.example.com' }],
  ];
  for (const [text, expected] of GOOD) {
    test(`${JSON.stringify(text)} → ${JSON.stringify(expected)}`, () => assert.deepEqual(parseRouteHost(text), expected));
  }

  const BAD = ['', 'bad_host', '-mx.test', 'mx-.test', 'mx..test', 'mx.test:0', 'mx.test:70000', 'mx.test:', 'mx test', 'mx.test:25:26', '[::1]:abc', 'ex%61mple.com', 'ｍｘ.example.com', 'mx.example\u3002com', 'mx.*.test'];
  for (const text of BAD) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseRouteHost(text),
        (e: unknown) => e instanceof ValidationError && e.message.includes('route host') && e.message.includes(JSON.stringify(text.trim())),
      );
    });
  }
});
