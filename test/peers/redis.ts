// Test peer: a real Redis (Debian's redis-server) on a loopback address, in a temporary
// directory, never the system service (../shared/PEERS.md §10). stop() ends it by PID;
// restart() starts it again on the same address, empty unless `keep` was asked for at start
// (then it saves on SHUTDOWN and loads the file again).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { within } from '../deadline.js';

const REDIS = '/usr/bin/redis-server';

export function redisAvailable(): boolean {
  return existsSync(REDIS);
}

export interface RedisPeer {
  host: string;
  port: number;
  url: string;
  /** Stops the server (SIGTERM; with `keep`, after SHUTDOWN SAVE). */
  stop(): Promise<void>;
  /** Starts it again on the same address and directory. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

async function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/**
 * `password`: clients must AUTH; `tls`: the port speaks TLS only (a certificate and key in PEM,
 * written into the server's directory), and the URL is rediss://.
 */
export async function startRedis(o: { host: string; port: number; keep?: boolean; password?: string; tls?: { certPem: string; keyPem: string } }): Promise<RedisPeer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-redis-'));
  let proc: ChildProcess | null = null;
  const args = ['--bind', o.host, '--dir', dir, '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no', '--save', o.keep ? '3600 1' : ''];
  if (o.tls) {
    writeFileSync(path.join(dir, 'cert.pem'), o.tls.certPem);
    writeFileSync(path.join(dir, 'key.pem'), o.tls.keyPem, { mode: 0o600 });
    args.push('--port', '0', '--tls-port', String(o.port), '--tls-cert-file', path.join(dir, 'cert.pem'), '--tls-key-file', path.join(dir, 'key.pem'), '--tls-auth-clients', 'no');
  } else args.push('--port', String(o.port));
  if (o.password) args.push('--requirepass', o.password);
  const start = async () => {
    proc = spawn(REDIS, args, { stdio: 'ignore' });
    const until = Date.now() + within(10_000);
    while (!(await reachable(o.host, o.port))) {
      if (Date.now() > until) throw new Error(`redis-server did not start on ${o.host}:${o.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    if (o.keep) spawnSync('/usr/bin/redis-cli', ['-h', o.host, '-p', String(o.port), ...(o.password ? ['-a', o.password] : []), 'shutdown', 'save']);
    else p.kill('SIGTERM');
    await new Promise<void>((resolve) => (p.exitCode !== null ? resolve() : p.once('exit', () => resolve())));
    proc = null;
  };
  await start();
  return {
    host: o.host,
    port: o.port,
    url: `${o.tls ? 'rediss' : 'redis'}://${o.password ? `:${encodeURIComponent(o.password)}@` : ''}${o.host}:${o.port}`,
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
