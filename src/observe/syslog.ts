/**
 * Mail-log text lines to syslog (`--log-to syslog`), facility mail, severity info or warning.
 *
 * Node cannot open the Unix datagram socket /dev/log itself, so the lines go through one
 * long-lived `logger` process (util-linux, always present on Debian) reading standard input:
 * `--prio-prefix` lets each line carry its own priority (`<22>` mail.info, `<20>` mail.warning).
 * With a `--syslog HOST:PORT` target, logger sends RFC 5424 datagrams over UDP there instead.
 * If logger cannot be started or dies, lines are written to standard error so nothing is lost
 * silently, and one message says why.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { LineSink } from './maillog.js';

const MAIL_INFO = 2 * 8 + 6;
const MAIL_WARNING = 2 * 8 + 4;

export class SyslogSink implements LineSink {
  private child: ChildProcessByStdio<Writable, null, Readable> | null = null;
  private broken = false;

  constructor(private readonly target?: { host: string; port: number }) {
    this.start();
  }

  private start(): void {
    // --socket-errors=on: logger reports a socket it cannot write instead of dropping lines silently.
    const args = ['--prio-prefix', '--tag', 'postern', '--socket-errors=on'];
    if (this.target) args.push('--udp', '--server', this.target.host, '--port', String(this.target.port));
    const child = spawn('logger', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    child.on('error', (e) => this.fail(`cannot run logger: ${e.message}`));
    child.on('exit', (code) => {
      if (this.child === child) this.fail(`logger exited (code ${code})`);
    });
    child.stdin.on('error', () => {
      /* reported by 'exit' */
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`postern: logger: ${d}`));
    this.child = child;
  }

  private fail(why: string): void {
    if (this.broken) return;
    this.broken = true;
    this.child = null;
    process.stderr.write(`postern: syslog: ${why}; mail-log lines go to standard error instead\n`);
  }

  append(line: string, level: 'Info' | 'Warning'): void {
    // The timestamp is syslog's business; the line keeps the appliance's text after it.
    const text = line.replace(/^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} /, '');
    if (this.broken || this.child === null) {
      process.stderr.write(line + '\n');
      return;
    }
    this.child.stdin.write(`<${level === 'Warning' ? MAIL_WARNING : MAIL_INFO}>${text}\n`);
  }

  flush(): void {}
  reopen(): void {}

  close(): void {
    const c = this.child;
    this.child = null;
    c?.stdin.end();
  }
}
