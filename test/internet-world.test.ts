/**
 * Proves bench/internet-world.ts, the world of the `internet` bench scenario: determinism from
 * the seed, the shares it promises (faults, far hosts, MX counts, recipients per message, soft
 * recipients, TLS mix, windows, busiest-domain entries), the Zipf skew, the window budget, sizes,
 * each rule of expectedFate on small hand-made worlds, the import file (parsed by the project's
 * own parser, src/controls/ini.ts) and the DNS zone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImport } from '../src/controls/ini.js';
import type { HostFault, MxHost, TableEntry, TlsSetting, World } from '../bench/internet-types.js';
import {
  BUSIEST,
  WINDOW_BUDGET_MINUTES,
  domainOf,
  expectedFate,
  makeWorld,
  recipientsByDomain,
  summary,
  tableImportFile,
  topDomainsShare,
  zoneOf,
} from '../bench/internet-world.js';

const world = makeWorld({});

/** Asserts share = target within one percentage point. */
function near(part: number, whole: number, target: number, what: string): void {
  const share = part / whole;
  assert.ok(Math.abs(share - target) <= 0.01, `${what}: ${(share * 100).toFixed(2)} %, want ${(target * 100).toFixed(0)} % ± 1`);
}

describe('internet world: determinism', () => {
  it('the same seed gives the same world', () => {
    const a = makeWorld({ seed: 7, messages: 5000 });
    const b = makeWorld({ seed: 7, messages: 5000 });
    assert.deepEqual(a, b);
  });

  it('different seeds give different worlds', () => {
    const a = makeWorld({ seed: 7, messages: 5000 });
    const b = makeWorld({ seed: 8, messages: 5000 });
    assert.notDeepEqual(a.hosts, b.hosts);
    assert.notDeepEqual(a.domains, b.domains);
    assert.notDeepEqual(a.messages, b.messages);
    assert.notDeepEqual(a.table, b.table);
  });

  it('fewer messages keep the same hosts and domains', () => {
    const small = makeWorld({ messages: 1000 });
    assert.deepEqual(small.hosts, world.hosts);
    assert.deepEqual(small.domains, world.domains);
  });
});

describe('internet world: shape', () => {
  it('has the default sizes', () => {
    assert.equal(world.hosts.length, 1000);
    assert.equal(world.domains.length, 10_000);
    assert.equal(world.messages.length, 100_000);
    assert.equal(world.table.length, 200);
    assert.deepEqual(world.defaults, { domain: '(Default)', tls: 'preferred', concurrency: 20, messagesPerConnection: 50 });
  });

  it('hosts: names, distinct loopback addresses, delays, faults', () => {
    const addresses = new Set<string>();
    world.hosts.forEach((h, i) => {
      assert.equal(h.name, `mx${i + 1}.hosts.internet.test`);
      const m = /^127\.0\.(\d+)\.(\d+)$/.exec(h.address);
      assert.ok(m, h.address);
      const [third, fourth] = [Number(m[1]), Number(m[2])];
      assert.ok(third >= 100 && third <= 255 && fourth >= 1 && fourth <= 254, h.address);
      addresses.add(h.address);
    });
    assert.equal(addresses.size, world.hosts.length);
    assert.equal(world.hosts[0]!.address, '127.0.100.1');
    assert.equal(world.hosts[249]!.address, '127.0.100.250');
    assert.equal(world.hosts[250]!.address, '127.0.101.1');

    const n = world.hosts.length;
    near(world.hosts.filter((h) => h.delayMs === 300).length, n, 0.05, 'far hosts');
    assert.ok(world.hosts.every((h) => h.delayMs === 40 || h.delayMs === 300));
    const targets: [HostFault, number][] = [
      ['refuse', 0.03],
      ['never-greet', 0.02],
      ['rcpt-4xx', 0.05],
      ['no-starttls', 0.1],
      ['tls-fail', 0.02],
      ['none', 0.78],
    ];
    for (const [f, t] of targets) near(world.hosts.filter((h) => h.fault === f).length, n, t, `hosts ${f}`);
  });

  it('domains: names, one or two distinct MX hosts, every host serving about ten', () => {
    const served = new Array<number>(world.hosts.length).fill(0);
    world.domains.forEach((d, i) => {
      assert.equal(d.name, `d${i + 1}.internet.test`);
      assert.ok(d.mx.length === 1 || d.mx.length === 2, d.name);
      assert.equal(new Set(d.mx).size, d.mx.length, `${d.name}: distinct MX hosts`);
      for (const h of d.mx) {
        assert.ok(Number.isInteger(h) && h >= 0 && h < world.hosts.length);
        served[h]!++;
      }
    });
    near(world.domains.filter((d) => d.mx.length === 2).length, world.domains.length, 0.2, 'two-MX domains');
    assert.ok(Math.min(...served) >= 8 && Math.max(...served) <= 16, `domains per host ${Math.min(...served)}–${Math.max(...served)}`);
  });

  it('messages: recipients per message, same-domain share, soft share, unique addresses', () => {
    const byCount = [0, 0, 0, 0, 0, 0];
    let multi = 0;
    let sameDomain = 0;
    let soft = 0;
    let recipients = 0;
    const seen = new Set<string>();
    const domains = new Set(world.domains.map((d) => d.name));
    for (const m of world.messages) {
      assert.ok(m.to.length >= 1 && m.to.length <= 5);
      byCount[m.to.length]!++;
      if (m.to.length > 1) {
        multi++;
        if (new Set(m.to.map(domainOf)).size === 1) sameDomain++;
      }
      for (const a of m.to) {
        assert.match(a, /^(u|soft)\d+@d\d+\.internet\.test$/);
        assert.ok(domains.has(domainOf(a)), a);
        assert.ok(!seen.has(a), `duplicate ${a}`);
        seen.add(a);
        recipients++;
        if (a.startsWith('soft')) soft++;
      }
    }
    near(byCount[1]!, world.messages.length, 0.6, 'one-recipient messages');
    assert.ok(byCount[1]! > byCount[2]! && byCount[2]! > byCount[3]! && byCount[3]! > byCount[4]! && byCount[4]! > byCount[5]!, `skewed to one: ${byCount.join(',')}`);
    // 80 % by choice, plus the independent draws that happen to land on one domain.
    const same = sameDomain / multi;
    assert.ok(same >= 0.79 && same <= 0.9, `same-domain multi-recipient messages ${(same * 100).toFixed(1)} %`);
    near(soft, recipients, 0.05, 'soft recipients');
  });

  it('Zipf: the top 20 domains take 35–65 % of recipients', () => {
    const share = topDomainsShare(world, 20);
    assert.ok(share >= 0.35 && share <= 0.65, `top-20 share ${(share * 100).toFixed(1)} %`);
  });

  it('sizes are 2–100 KB and spread log-uniformly', () => {
    let small = 0;
    for (const m of world.messages) {
      assert.ok(Number.isInteger(m.size) && m.size >= 2048 && m.size <= 102_400, String(m.size));
      if (m.size < Math.sqrt(2048 * 102_400)) small++;
    }
    near(small, world.messages.length, 0.5, 'sizes below the geometric mean');
  });

  it('table: distinct domains, half among the busiest, TLS mix, ranges, windowed share', () => {
    const t = world.table;
    const names = new Set(t.map((e) => e.domain));
    assert.equal(names.size, t.length);
    const all = new Set(world.domains.map((d) => d.name));
    for (const e of t) assert.ok(all.has(e.domain), e.domain);

    const volume = recipientsByDomain(world);
    const busiest = new Set(
      world.domains
        .map((d, i) => ({ name: d.name, v: volume.get(d.name) ?? 0, i }))
        .sort((a, b) => b.v - a.v || a.i - b.i)
        .slice(0, BUSIEST)
        .map((x) => x.name),
    );
    assert.equal(t.filter((e) => busiest.has(e.domain)).length >= t.length / 2, true);
    assert.ok(t.filter((e) => busiest.has(e.domain)).length <= t.length / 2 + 5, 'the random half is mostly outside the busiest');

    const mix: [TlsSetting, number][] = [
      ['no', 0.15],
      ['preferred', 0.45],
      ['required', 0.15],
      ['preferred-verify', 0.15],
      ['required-verify', 0.1],
    ];
    for (const [tls, target] of mix) near(t.filter((e) => e.tls === tls).length, t.length, target, `tls ${tls}`);
    for (const e of t) {
      assert.ok(Number.isInteger(e.concurrency) && e.concurrency >= 2 && e.concurrency <= 50, `${e.domain} concurrency ${e.concurrency}`);
      assert.ok(Number.isInteger(e.messagesPerConnection) && e.messagesPerConnection >= 1 && e.messagesPerConnection <= 100);
    }
    assert.ok(new Set(t.map((e) => e.concurrency)).size > 10, 'concurrency varies');
    near(t.filter((e) => e.window).length, t.length, 0.3, 'windowed entries');
  });

  it("every windowed entry carries its domain's whole volume within 3 minutes of windows", () => {
    const volume = recipientsByDomain(world);
    const windowed = world.table.filter((e) => e.window);
    assert.ok(windowed.length > 0);
    for (const e of windowed) {
      const { recipients, minutes } = e.window!;
      const v = volume.get(e.domain) ?? 0;
      assert.ok(Number.isInteger(minutes) && minutes >= 1 && minutes <= 5, `${e.domain} minutes ${minutes}`);
      assert.ok(Number.isInteger(recipients) && recipients >= 1, `${e.domain} recipients ${recipients}`);
      assert.ok(recipients >= Math.ceil(v / (WINDOW_BUDGET_MINUTES / minutes)), `${e.domain}: ${v} recipients in ${recipients}/${minutes} min`);
      // Windows of M minutes in 3 minutes, each N recipients: the whole volume fits.
      assert.ok(recipients * WINDOW_BUDGET_MINUTES >= v * minutes);
    }
    // Some window is tight enough to shape delivery (less than the whole volume per window).
    assert.ok(windowed.some((e) => e.window!.recipients < (volume.get(e.domain) ?? 0)), 'no window shapes delivery');
  });

  it('summary gives a few lines', () => {
    const lines = summary(makeWorld({ messages: 2000 }));
    assert.ok(lines.length >= 3 && lines.length <= 8);
    assert.match(lines.join('\n'), /refuse \d+/);
    assert.match(lines.join('\n'), /deliverable/);
    assert.match(lines.join('\n'), /top 20 domains take \d+\.\d %/);
  });
});

// ---- expectedFate on hand-made worlds -------------------------------------------------------

/** One domain, d.t, on hosts with these faults in MX order; `tls` in its table entry, or defaults. */
function tiny(faults: HostFault[], tls: TlsSetting | undefined, defaultsTls: TlsSetting = 'preferred'): World {
  const hosts: MxHost[] = faults.map((fault, i) => ({ name: `mx${i + 1}.h.t`, address: `127.0.100.${i + 1}`, delayMs: 40, fault }));
  const table: TableEntry[] = tls === undefined ? [] : [{ domain: 'd.t', tls, concurrency: 2, messagesPerConnection: 1 }];
  return {
    seed: 0,
    hosts,
    domains: [{ name: 'd.t', mx: faults.map((_, i) => i) }],
    table,
    defaults: { domain: '(Default)', tls: defaultsTls, concurrency: 20, messagesPerConnection: 50 },
    messages: [],
  };
}

const ALL_TLS: TlsSetting[] = ['no', 'preferred', 'required', 'preferred-verify', 'required-verify'];
const REQUIRED: TlsSetting[] = ['required', 'required-verify'];
const NOT_REQUIRED: TlsSetting[] = ['no', 'preferred', 'preferred-verify'];

function fate(w: World, address = 'u1@d.t') {
  return expectedFate(w, address);
}

function assertDeferred(w: World, address: string, ...why: RegExp[]): void {
  const f = fate(w, address);
  assert.equal(f.kind, 'deferred', `${address}: ${JSON.stringify(f)}`);
  if (f.kind === 'deferred') for (const re of why) assert.match(f.why, re);
}

describe('expectedFate', () => {
  it('none delivers, whatever the TLS setting', () => {
    for (const tls of ALL_TLS) assert.deepEqual(fate(tiny(['none'], tls)), { kind: 'delivered' }, tls);
    assert.deepEqual(fate(tiny(['none'], undefined), 'soft1@d.t'), { kind: 'delivered' });
  });

  it('refuse and never-greet pass to the next host', () => {
    for (const f of ['refuse', 'never-greet'] as HostFault[]) {
      for (const tls of ALL_TLS) assert.deepEqual(fate(tiny([f, 'none'], tls)), { kind: 'delivered' }, `${f} ${tls}`);
    }
  });

  it('no host delivers: deferred, naming every host and its reason', () => {
    assertDeferred(tiny(['refuse'], 'no'), 'u1@d.t', /mx1\.h\.t/, /refused/);
    assertDeferred(tiny(['never-greet'], 'preferred'), 'u1@d.t', /mx1\.h\.t/, /greeting/);
    assertDeferred(tiny(['refuse', 'never-greet'], 'preferred'), 'u1@d.t', /mx1\.h\.t[^;]*refused/, /mx2\.h\.t[^;]*greeting/);
  });

  it('no-starttls: next host under required*, delivered in clear otherwise', () => {
    for (const tls of REQUIRED) {
      assertDeferred(tiny(['no-starttls'], tls), 'u1@d.t', /mx1\.h\.t/, /STARTTLS/);
      assert.deepEqual(fate(tiny(['no-starttls', 'none'], tls)), { kind: 'delivered' }, tls);
      assertDeferred(tiny(['no-starttls', 'refuse'], tls), 'u1@d.t', /mx1\.h\.t[^;]*STARTTLS/, /mx2\.h\.t[^;]*refused/);
    }
    for (const tls of NOT_REQUIRED) assert.deepEqual(fate(tiny(['no-starttls', 'refuse'], tls)), { kind: 'delivered' }, tls);
  });

  it('tls-fail: next host under required*, delivered under preferred* and no', () => {
    for (const tls of REQUIRED) {
      assertDeferred(tiny(['tls-fail'], tls), 'u1@d.t', /mx1\.h\.t/, /TLS/, /handshake/);
      assert.deepEqual(fate(tiny(['tls-fail', 'none'], tls)), { kind: 'delivered' }, tls);
    }
    for (const tls of NOT_REQUIRED) assert.deepEqual(fate(tiny(['tls-fail', 'refuse'], tls)), { kind: 'delivered' }, tls);
  });

  it('rcpt-4xx: delivered, except soft local parts, deferred with the 451 of that host', () => {
    for (const tls of ALL_TLS) {
      assert.deepEqual(fate(tiny(['rcpt-4xx'], tls), 'u1@d.t'), { kind: 'delivered' }, tls);
      assertDeferred(tiny(['rcpt-4xx'], tls), 'soft1@d.t', /451/, /mx1\.h\.t/);
      // The 451 is the recipient's answer: no next host.
      assertDeferred(tiny(['rcpt-4xx', 'none'], tls), 'soft1@d.t', /451/, /mx1\.h\.t/);
    }
    // After a refusing first host, the 451 comes from the second.
    assertDeferred(tiny(['refuse', 'rcpt-4xx'], 'preferred'), 'soft2@d.t', /mx2\.h\.t[^;]*451/);
  });

  it('the table entry gives the TLS setting, else the defaults', () => {
    // Not in the table: the defaults decide.
    assertDeferred(tiny(['no-starttls'], undefined, 'required'), 'u1@d.t', /STARTTLS/);
    assert.deepEqual(fate(tiny(['no-starttls'], undefined, 'preferred')), { kind: 'delivered' });
    // In the table: the entry wins over the defaults.
    assert.deepEqual(fate(tiny(['no-starttls'], 'no', 'required')), { kind: 'delivered' });
    assertDeferred(tiny(['tls-fail'], 'required-verify', 'no'), 'u1@d.t', /handshake/);
    // Case of the address's domain does not matter.
    assertDeferred(tiny(['tls-fail'], 'required'), 'u1@D.T', /handshake/);
  });

  it('throws for a domain the world does not have', () => {
    assert.throws(() => fate(tiny(['none'], 'no'), 'u1@elsewhere.t'), /not in the world/);
  });

  it('agrees with the rules on the generated world', () => {
    const hostsOf = new Map(world.domains.map((d) => [d.name, d.mx.map((i) => world.hosts[i]!)]));
    const tlsOf = new Map(world.table.map((e) => [e.domain, e.tls]));
    let delivered = 0;
    let total = 0;
    for (const m of world.messages.slice(0, 20_000)) for (const a of m.to) {
      total++;
      const f = expectedFate(world, a);
      const hosts = hostsOf.get(domainOf(a))!;
      if (hosts.every((h) => h.fault === 'none')) assert.equal(f.kind, 'delivered', a);
      if (hosts.every((h) => h.fault === 'refuse' || h.fault === 'never-greet')) assert.equal(f.kind, 'deferred', a);
      if (!REQUIRED.includes(tlsOf.get(domainOf(a)) ?? 'preferred') && hosts[0]!.fault !== 'rcpt-4xx' && hosts[0]!.fault !== 'refuse' && hosts[0]!.fault !== 'never-greet') {
        assert.equal(f.kind, 'delivered', a);
      }
      if (f.kind === 'delivered') delivered++;
    }
    // Most recipients are deliverable, some are not (how many depends on where the busiest
    // domains' MX hosts fall: a Zipf head on a faulty host moves the share a lot).
    assert.ok(delivered / total > 0.6 && delivered < total, `${delivered}/${total} deliverable`);
  });
});

// ---- the import file and the zone -------------------------------------------------------------

describe('tableImportFile', () => {
  it("parses with the project's parser and gives back the table", () => {
    const text = tableImportFile(world);
    const r = parseImport(text);
    assert.ok(r.ok, r.ok ? '' : r.errors.map((e) => `${e.line}: ${e.message}`).join('\n'));
    assert.equal(r.defaults.tls, 'preferred');
    assert.equal(r.defaults.concurrency, 20);
    assert.equal(r.defaults.messagesPerConnection, 50);
    assert.equal(r.defaults.recipientLimit, null);
    assert.equal(r.defaults.limitPer, 'domain');
    assert.equal(r.defaults.enforce, 'system');
    assert.equal(r.entries.length, world.table.length);
    const byName = new Map(r.entries.map((e) => [e.name, e.settings]));
    for (const e of world.table) {
      const s = byName.get(e.domain);
      assert.ok(s, e.domain);
      assert.equal(s.tls, e.tls, e.domain);
      assert.equal(s.concurrency, e.concurrency, e.domain);
      assert.equal(s.messagesPerConnection, e.messagesPerConnection, e.domain);
      assert.deepEqual(s.recipientLimit, e.window ? { recipients: e.window.recipients, minutes: e.window.minutes } : undefined, e.domain);
      assert.equal(s.limitPer, 'domain');
      assert.equal(s.enforce, 'system');
    }
  });

  it('parses for other seeds and sizes too, and for an empty table', () => {
    for (const w of [makeWorld({ seed: 3, messages: 3000, tableEntries: 50 }), makeWorld({ seed: 4, messages: 100, tableEntries: 0 })]) {
      const r = parseImport(tableImportFile(w));
      assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors.slice(0, 3)));
      assert.equal(r.entries.length, w.table.length);
    }
  });
});

describe('zoneOf', () => {
  it("holds each domain's MX records in order and each host's A record", () => {
    const zone = zoneOf(world, { ttl: 120 });
    for (const d of world.domains) {
      const node = zone[d.name];
      assert.ok(node?.MX, d.name);
      assert.deepEqual(
        node.MX.map((m) => m.exchange),
        d.mx.map((i) => world.hosts[i]!.name),
      );
      const prefs = node.MX.map((m) => m.preference);
      assert.deepEqual(prefs, [...prefs].sort((a, b) => a - b));
      assert.equal(new Set(prefs).size, prefs.length, 'distinct preferences: the order is fixed');
      assert.equal(node.ttl, 120);
    }
    for (const h of world.hosts) assert.deepEqual(zone[h.name]?.A, [h.address]);
    for (const k of Object.keys(zone)) assert.equal(k, k.toLowerCase());
  });
});
