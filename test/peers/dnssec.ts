// Test peer: a real validating DNSSEC resolver (Debian's unbound, in the foreground, from its own
// temporary directory, never the system service) over test zones signed at start with BIND's
// dnssec-keygen / dnssec-signzone (ECDSAP256SHA256), for DANE (TLSA under DNSSEC) and MTA-STS
// tests. See ../shared/PEERS.md §6.3 and §10.
//
//   const dns = await startDnssec({ host: '127.0.88.1', port: 2626, zones: [
//     { name: 'secure.dane.test', kind: 'secure', records: ['@ MX 10 mx1', 'mx1 A 127.0.88.10',
//       `_25._tcp.mx1 TLSA 3 1 1 ${sha256hex}`] },
//     { name: 'bogus.dane.test', kind: 'bogus', records: ['@ MX 10 mx1', 'mx1 A 127.0.88.11'] },
//     { name: 'plain.dane.test', kind: 'insecure', records: ['@ MX 10 mx1', 'mx1 A 127.0.88.12'] },
//   ] });
//   // point the code under test at dns.address ('127.0.88.1:2626'); dns.query(...) asks it directly
//   await dns.update({ name: 'secure.dane.test', kind: 'secure', records: [...] });  // re-sign + reload
//   await dns.close();                                                               // process gone, dir removed
//
// What it builds (all inside one temporary directory, nothing written elsewhere):
// - a signed parent zone (default `test.`) holding, for every child, a delegation (`NS ns.<parent>.`)
//   and, for secure and bogus children, a DS record; its key is the resolver's only trust anchor;
// - every child as its own zone: 'secure' signed and its DS in the parent (answers carry AD);
//   'bogus' signed but the parent's DS digest is altered so it matches no key (every answer is
//   SERVFAIL; with the CD bit the data is there); 'insecure' unsigned, NS without DS in the signed
//   parent, so the parent's NSEC proves the delegation insecure (answers without AD; no
//   `domain-insecure` needed). `tamper` (secure zones) corrupts the RRSIG of chosen RRsets only,
//   e.g. a bogus TLSA under a secure MX (RFC 7672 §2.2).
// - Each zone gets a SOA and an apex NS added; `records` must not repeat them.
//
// How unbound serves it: the parent and each child are `auth-zone`s with `for-upstream: yes`,
// `for-downstream: no`, `fallback-enabled: no`. The iterator answers from the closest enclosing
// auth-zone as if it had asked that zone's server, so queries for a child's names are answered by
// the child zone and DS queries (which belong one label up) by the parent: the validator walks the
// chain trust anchor → parent DNSKEY → DS → child DNSKEY → RRset without a packet leaving the
// process. So the NS host name and its address in the parent are never used (a delegation to
// `ns.invalid.` with no glue at all validated the same); they are there only for the zone to be a
// well-formed delegation. `do-not-query-address` 0.0.0.0/0 and ::/0 make sure unbound never sends a
// query anywhere, and `local-zone: "." refuse` answers every name outside the parent REFUSED at
// once (instead of a root priming attempt that fails or, on a networked machine, reaches the
// internet). `local-zone: "<parent>." transparent` lifts unbound's built-in block on `test.` (and
// is harmless for other parents). `so-reuseport: no`: a second resolver on a taken address fails
// to start instead of sharing the port.
//
// Keys: one ECDSAP256SHA256 key per signed zone, flagged KSK (257) and signing every RRset
// (dnssec-signzone -S -z), written with -O full (one record per line, which `tamper` edits).
// Signatures are dnssec-signzone's defaults: valid from an hour ago for 30 days.
// `dnssecQuery` (also `peer.query`) is a small dns-packet client for asserting on the resolver:
// DO bit set, AD/rcode read, TCP on truncation. Node's own resolver can neither ask for TLSA nor
// show AD (PEERS.md §6).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { within } from '../deadline.js';

const UNBOUND = '/usr/sbin/unbound';
const UNBOUND_CONTROL = '/usr/sbin/unbound-control';
const KEYGEN = '/usr/bin/dnssec-keygen';
const SIGNZONE = '/usr/bin/dnssec-signzone';
const DSFROMKEY = '/usr/bin/dnssec-dsfromkey';
const CHECKZONE = '/usr/bin/named-checkzone';

const TTL = 300;
const ALGORITHM = 'ECDSAP256SHA256';

export interface SignedZoneSpec {
  /** Zone apex, e.g. 'secure.dane.test' (a child of the parent zone; children must not nest). */
  name: string;
  /**
   * Records in zone-file syntax, owners relative to the apex or absolute with a trailing dot,
   * e.g. ['@ MX 10 mx1', 'mx1 A 127.0.88.10', '_25._tcp.mx1 TLSA 3 1 1 <hex>'].
   * The SOA and the apex NS are added; TTL 300 unless a record gives its own.
   */
  records: string[];
  /**
   * 'secure': signed, DS in the parent (answers with AD). 'bogus': signed, but the parent's DS
   * matches no key: validation fails, SERVFAIL (with CD the data is there). 'insecure': unsigned,
   * NS without DS in the parent: answers without AD.
   */
  kind: 'secure' | 'bogus' | 'insecure';
  /**
   * Signed zones only: RRsets whose signatures are corrupted after signing, as 'OWNER TYPE' with
   * the owner as in `records` ('@' for the apex), e.g. ['_25._tcp.mx1 TLSA']. Those RRsets are
   * bogus (SERVFAIL), the rest of the zone stays secure.
   */
  tamper?: string[];
}

export interface DnssecQueryResult {
  rcode: string;
  /** AD flag: the resolver validated the answer. */
  ad: boolean;
  /** TC was set over UDP and the answer came over TCP. */
  tcp: boolean;
  answers: Answer[];
  authorities: Answer[];
  packet: DecodedPacket;
}

export interface DnssecPeer {
  host: string;
  port: number;
  /** 'HOST:PORT' ('[::1]:PORT' for IPv6), the form Resolver.setServers and DNS clients take. */
  address: string;
  /** The parent zone's name, no trailing dot (e.g. 'test'). */
  parent: string;
  /** The resolver's trust anchor: the parent's key-signing key, 'test. IN DNSKEY 257 3 13 …'. */
  trustAnchor: string;
  /** The same anchor as a DS record, 'test. IN DS <tag> 13 2 <hex>'. */
  trustAnchorDs: string;
  /** unbound's process id (gone after close()). */
  pid: number;
  /** The temporary directory (keys, zone files, unbound.conf, unbound.log); removed by close(). */
  dir: string;
  /** What unbound has logged so far (validation failures are logged with their reason). */
  log(): string;
  /** Asks the resolver directly: DO bit set, `cd` sets CD; a truncated UDP answer is retried over TCP. */
  query(name: string, type: string, o?: { cd?: boolean }): Promise<DnssecQueryResult>;
  /**
   * Replaces one started zone's records (and kind or tamper list, if given differently),
   * re-signs it (and the parent, if the kind changed), reloads it in unbound and flushes the
   * resolver's caches for the parent's names, so the next query sees the new data.
   */
  update(zone: SignedZoneSpec): Promise<void>;
  /** Ends unbound (SIGTERM, SIGKILL after a while) and removes the directory. */
  close(): Promise<void>;
}

export interface StartDnssecOptions {
  host: string;
  port: number;
  zones: SignedZoneSpec[];
  /** The signed parent zone, trust anchor of the resolver. Default 'test'. */
  parent?: string;
}

/** unbound and BIND's signing tools (packages unbound and bind9-utils) are installed. */
export function dnssecAvailable(): boolean {
  return [UNBOUND, UNBOUND_CONTROL, KEYGEN, SIGNZONE, DSFROMKEY, CHECKZONE].every((f) => existsSync(f));
}

function run(file: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: within(10_000) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${[stdout.trim(), stderr.trim()].filter(Boolean).join('\n') || err.message}`));
      else resolve(stdout);
    });
  });
}

const norm = (name: string) => name.trim().toLowerCase().replace(/\.$/, '');

interface ZoneKey {
  /** Key file base name, 'K<zone>.+013+<tag>'. */
  base: string;
  dnskey: string;
  ds: string;
}

interface ZoneState {
  spec: SignedZoneSpec;
  serial: number;
  key?: ZoneKey;
}

/** Hex digest of a DS line with its first digit changed, so it matches no key. */
function spoilDs(ds: string): string {
  const f = ds.trim().split(/\s+/);
  const digest = f[f.length - 1]!;
  f[f.length - 1] = (digest[0] === '0' ? '1' : '0') + digest.slice(1);
  return f.join(' ');
}

function absolute(owner: string, zone: string): string {
  if (owner === '@') return `${zone}.`;
  return owner.endsWith('.') ? owner.toLowerCase() : `${owner.toLowerCase()}.${zone}.`;
}

/** Corrupts the first signature character of the named RRsets' RRSIGs (zone in -O full format). */
function tamper(signed: string, zone: string, targets: string[]): string {
  const lines = signed.split('\n');
  for (const t of targets) {
    const [owner, type] = t.trim().split(/\s+/);
    if (!owner || !type) throw new Error(`tamper entry ${JSON.stringify(t)} is not 'OWNER TYPE'`);
    const want = absolute(owner, zone);
    let hit = false;
    for (let i = 0; i < lines.length; i++) {
      // OWNER TTL IN RRSIG COVERED ALG LABELS ORIGTTL EXPIRATION INCEPTION TAG SIGNER SIGNATURE…
      const f = lines[i]!.trim().split(/\s+/);
      if (f.length < 13 || f[3] !== 'RRSIG' || f[0]!.toLowerCase() !== want || f[4] !== type.toUpperCase()) continue;
      f[12] = (f[12]![0] === 'A' ? 'B' : 'A') + f[12]!.slice(1);
      lines[i] = f.join(' ');
      hit = true;
    }
    if (!hit) throw new Error(`tamper: no signed ${type} RRset at ${want} in ${zone}`);
  }
  return lines.join('\n');
}

/** One query to HOST:PORT with the DO bit; over TCP when asked or when the UDP answer is truncated. */
export async function dnssecQuery(
  server: { host: string; port: number },
  name: string,
  type: string,
  o: { cd?: boolean; tcp?: boolean; timeoutMs?: number } = {},
): Promise<DnssecQueryResult> {
  const id = Math.floor(Math.random() * 65536);
  const msg = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | (o.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ type: type.toUpperCase() as Question['type'], name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as Answer],
  });
  const timeout = o.timeoutMs ?? within(2_000);
  const result = (packet: DecodedPacket, tcp: boolean): DnssecQueryResult => ({
    rcode: (packet as DecodedPacket & { rcode?: string }).rcode ?? String((packet.flags ?? 0) & 15),
    ad: packet.flag_ad,
    tcp,
    answers: packet.answers ?? [],
    authorities: packet.authorities ?? [],
    packet,
  });
  if (!o.tcp) {
    const packet = await new Promise<DecodedPacket>((resolve, reject) => {
      const sock = dgram.createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
      const timer = setTimeout(() => (sock.close(), reject(new Error(`no answer from ${server.host}:${server.port} for ${name} ${type}`))), timeout);
      sock.on('error', (e) => (clearTimeout(timer), sock.close(), reject(e)));
      sock.on('message', (m) => {
        const p = dnsPacket.decode(m);
        if (p.id !== id) return;
        clearTimeout(timer);
        sock.close();
        resolve(p);
      });
      sock.send(msg, server.port, server.host);
    });
    if (!packet.flag_tc) return result(packet, false);
  }
  const packet = await new Promise<DecodedPacket>((resolve, reject) => {
    const s = net.connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`no TCP answer from ${server.host}:${server.port} for ${name} ${type}`))), timeout);
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      s.write(Buffer.concat([len, msg]));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      }
    });
  });
  return result(packet, true);
}

export async function startDnssec(o: StartDnssecOptions): Promise<DnssecPeer> {
  const parent = norm(o.parent ?? 'test');
  const v6 = o.host.includes(':');
  const address = v6 ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  const zones = new Map<string, ZoneState>();
  for (const spec of o.zones) {
    const name = norm(spec.name);
    if (!name.endsWith(`.${parent}`)) throw new Error(`zone ${name} is not below the parent zone ${parent}`);
    if (zones.has(name)) throw new Error(`zone ${name} given twice`);
    zones.set(name, { spec: { ...spec, name }, serial: 0 });
  }
  for (const a of zones.keys()) {
    for (const b of zones.keys()) if (b.endsWith(`.${a}`)) throw new Error(`zone ${b} is nested in zone ${a}; children must be direct delegations of ${parent}`);
  }

  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-dnssec-'));
  const file = (f: string) => path.join(dir, f);
  const confFile = file('unbound.conf');
  const logFile = file('unbound.log');
  let proc: ChildProcess | null = null;
  const parentState: { serial: number; key?: ZoneKey } = { serial: 0 };

  const newKey = async (zone: string): Promise<ZoneKey> => {
    const base = (await run(KEYGEN, ['-q', '-K', dir, '-a', ALGORITHM, '-f', 'KSK', `${zone}.`], dir)).trim();
    const dnskey = readFileSync(file(`${base}.key`), 'utf8').split('\n').find((l) => / DNSKEY /.test(l) && !l.startsWith(';'))!.trim();
    const ds = (await run(DSFROMKEY, ['-2', file(`${base}.key`)], dir)).trim();
    return { base, dnskey, ds };
  };
  const soa = (zone: string, serial: number) =>
    [`$ORIGIN ${zone}.`, `$TTL ${TTL}`, `@ IN SOA ns.${parent}. hostmaster.${parent}. ${serial} 3600 600 86400 ${TTL}`, `@ IN NS ns.${parent}.`];
  const zoneFile = (zone: string) => file(`${zone}.zone`);
  /** What unbound loads: the signed zone, or for an insecure zone the zone file as written. */
  const servedFile = (zone: string) => file(`${zone}.db`);

  const sign = async (zone: string, tamperList: string[] = []) => {
    await run(SIGNZONE, ['-q', '-S', '-z', '-O', 'full', '-K', dir, '-o', `${zone}.`, '-f', servedFile(zone), zoneFile(zone)], dir);
    if (tamperList.length) writeFileSync(servedFile(zone), tamper(readFileSync(servedFile(zone), 'utf8'), zone, tamperList));
  };

  /** Writes the child's zone file (a key first, if a signed zone has none yet) and signs or checks it. */
  const buildChild = async (st: ZoneState) => {
    const { name, kind, records, tamper: tamperList = [] } = st.spec;
    if (kind !== 'insecure' && !st.key) st.key = await newKey(name);
    if (kind === 'insecure' && tamperList.length) throw new Error(`zone ${name}: tamper needs a signed zone`);
    st.serial++;
    const text = [...soa(name, st.serial), ...records, ''].join('\n');
    writeFileSync(zoneFile(name), text);
    if (kind === 'insecure') {
      await run(CHECKZONE, [`${name}.`, zoneFile(name)], dir);
      writeFileSync(servedFile(name), text);
    } else await sign(name, tamperList);
  };

  const buildParent = async () => {
    parentState.key ??= await newKey(parent);
    parentState.serial++;
    const lines = [...soa(parent, parentState.serial), `ns IN ${v6 ? 'AAAA' : 'A'} ${o.host}`];
    for (const [name, st] of zones) {
      lines.push(`${name}. IN NS ns.${parent}.`);
      if (st.spec.kind !== 'insecure') lines.push(st.spec.kind === 'bogus' ? spoilDs(st.key!.ds) : st.key!.ds);
    }
    writeFileSync(zoneFile(parent), lines.join('\n') + '\n');
    await sign(parent);
  };

  const control = (...args: string[]) => run(UNBOUND_CONTROL, ['-c', confFile, ...args], dir);

  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), within(2_000));
    await gone;
    clearTimeout(timer);
  };
  const killOnExit = () => proc?.kill('SIGKILL');

  try {
    // Keys (and DS records) first, then all zones signed at once.
    const signed = [...zones.values()].filter((st) => st.spec.kind !== 'insecure');
    const [parentKey] = await Promise.all([newKey(parent), ...signed.map(async (st) => void (st.key = await newKey(st.spec.name)))]);
    parentState.key = parentKey;
    await Promise.all([buildParent(), ...[...zones.values()].map(buildChild)]);

    writeFileSync(file('trust-anchor.key'), parentState.key.dnskey + '\n');
    const authZone = (name: string, zonefile: string) => [
      'auth-zone:',
      `  name: "${name}."`,
      `  zonefile: "${zonefile}"`,
      '  for-upstream: yes',
      '  for-downstream: no',
      '  fallback-enabled: no',
    ];
    const conf = [
      'server:',
      `  interface: ${o.host}@${o.port}`,
      `  port: ${o.port}`,
      '  do-daemonize: no',
      '  use-syslog: no',
      '  logfile: ""',
      '  pidfile: ""',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  verbosity: 1',
      '  log-servfail: yes',
      '  val-log-level: 2',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  do-ip4: yes',
      `  do-ip6: ${v6 ? 'yes' : 'no'}`,
      '  access-control: 0.0.0.0/0 allow',
      '  access-control: ::/0 allow',
      '  do-not-query-address: 0.0.0.0/0',
      '  do-not-query-address: ::/0',
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${file('trust-anchor.key')}"`,
      '  trust-anchor-signaling: no',
      '  local-zone: "." refuse',
      `  local-zone: "${parent}." transparent`,
      ...authZone(parent, servedFile(parent)),
      ...[...zones.keys()].flatMap((z) => authZone(z, servedFile(z))),
      'remote-control:',
      '  control-enable: yes',
      `  control-interface: "${file('control.sock')}"`,
      '  control-use-cert: no',
      '',
    ];
    writeFileSync(confFile, conf.join('\n'));

    const logFd = openSync(logFile, 'a');
    proc = spawn(UNBOUND, ['-d', '-c', confFile], { cwd: dir, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    // A peer a test forgot to close must not keep the test process alive; it dies with it.
    proc.unref();
    process.once('exit', killOnExit);
    const p = proc;
    const logText = () => readFileSync(logFile, 'utf8').trim();
    // Ready when unbound has opened its ports ("start of service": an address in use is a fatal
    // error before that, and an answer from another resolver on the address must not count) and
    // each zone answers its SOA (with CD, so a bogus zone answers too): every zone loaded.
    const until = Date.now() + within(5_000);
    let started = false;
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`unbound exited (${p.exitCode ?? p.signalCode}) on start: ${logText()}`);
      if (Date.now() > until) throw new Error(`unbound did not serve all zones on ${address} in time: ${logText()}`);
      started ||= logText().includes('start of service');
      if (started) {
        const rs = await Promise.all(
          [parent, ...zones.keys()].map((z) => dnssecQuery(o, `${z}.`, 'SOA', { cd: true, timeoutMs: 200 }).catch(() => null)),
        );
        if (rs.every((r) => r && r.rcode === 'NOERROR' && r.answers.length > 0)) break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (e) {
    await stop();
    process.off('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const pid = proc!.pid!;
  return {
    host: o.host,
    port: o.port,
    address,
    parent,
    trustAnchor: parentState.key!.dnskey,
    trustAnchorDs: parentState.key!.ds,
    pid,
    dir,
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    query: (name, type, q = {}) => dnssecQuery(o, name, type, { cd: q.cd }),
    update: async (spec) => {
      const name = norm(spec.name);
      const st = zones.get(name);
      if (!st) throw new Error(`zone ${name} was not started; update can only change started zones`);
      const kindChanged = st.spec.kind !== spec.kind;
      const previous = st.spec;
      st.spec = { ...spec, name };
      try {
        await buildChild(st);
      } catch (e) {
        st.spec = previous; // nothing was reloaded: unbound still serves the previous zone
        throw e;
      }
      await control('auth_zone_reload', name);
      if (kindChanged) {
        await buildParent();
        await control('auth_zone_reload', parent);
      }
      await control('flush_zone', parent);
      await control('flush_bogus');
      await control('flush_negative');
    },
    close: async () => {
      await stop();
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
