/**
 * Narrow corrections to smtp-server's address handling and replies, installed once on its
 * connection class when the listener module loads. They exist because Postern's name rule
 * (tls/names.ts) must see an envelope address exactly as the client sent it, and because every
 * reply of Postern's carries an enhanced status code.
 *
 * 1. The raw address. The library converts the domain of every MAIL/RCPT address with
 *    punycode.js `toUnicode`, which also maps the IDNA2003 dots (U+3002, U+FF0E, U+FF61) to
 *    "." — so `a@example。com` would reach Postern as `a@example.com`, one name taken for
 *    another. After the library has parsed a command, the address it returns is replaced by the
 *    address as written (angle brackets and any source route removed); the listener then checks
 *    it with the strict rule and refuses what is not a host name.
 * 2. Quoted local parts. The library splits the command at white space, so `"a b"@example.org`
 *    (RFC 5321 §4.1.2 Quoted-string) never parses. Such a path is handed to the library with a
 *    plain stand-in local part, and the address as written is put back afterwards.
 * 3. Refusals. Every reply of 400 or above that a client is sent goes to the hook its server
 *    registered with onRefusal (the listener logs it), whoever made it: Postern's callbacks or
 *    the library itself (an unknown command, the idle timeout, a syntax error).
 * 4. Enhanced status codes. With ENHANCEDSTATUSCODES advertised the library puts a code of its
 *    choosing before every reply; a reply of Postern's own already starts with the right one
 *    (`554 5.7.1 <a@example.com>: Relay access denied`), so the library's is not added to those.
 * 5. One write for a pipelined group's replies. The library writes every reply alone: a client
 *    that pipelines MAIL, RCPT and DATA costs a TLS record and a system call per reply (the
 *    listener thread's largest cost in the profiles). Replies 250 and 354 are held (the socket
 *    corked) until the end of the current turn of the event loop and go out together; any other
 *    reply — 220 before a TLS handshake, 221, 421, every refusal — first sends what is held and
 *    then goes out at once, so that nothing is held across STARTTLS or a close.
 */
import type { Socket } from 'node:net';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

type RefusalHook = (session: SMTPServerSession, reply: string) => void;
const refusalHooks = new WeakMap<object, RefusalHook>();

/** Calls `hook` with every reply of 400 or above that `server` sends to a client. */
export function onRefusal(server: SMTPServer, hook: RefusalHook): void {
  refusalHooks.set(server, hook);
}

const SOURCE_ROUTE = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/;
// A path: <...> holding quoted strings (RFC 5321 qtextSMTP and quoted-pairSMTP) or characters
// that are neither brackets, quotes nor white space.
const PATH = /^<((?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\uffff]|\\[\x20-\x7e])*"|[^<>\s"])*)>/;
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

export interface SplitPath {
  /** `MAIL FROM:` or `RCPT TO:` as written, up to the path. */
  head: string;
  /** The address inside the brackets, source route removed. */
  address: string;
  /** What follows the path (parameters). */
  tail: string;
}

/** The address inside `MAIL FROM:<...>` / `RCPT TO:<...>` as written, or null. */
export function splitPath(command: string): SplitPath | null {
  const colon = command.indexOf(':');
  if (colon === -1) return null;
  const after = command.slice(colon + 1);
  const lead = after.length - after.trimStart().length;
  const m = PATH.exec(after.trimStart());
  if (!m) return null;
  return { head: command.slice(0, colon + 1 + lead), address: m[1]!.replace(SOURCE_ROUTE, ''), tail: after.trimStart().slice(m[0].length) };
}

/** Sockets whose replies are held until the end of this turn of the event loop (item 5). */
const holding = new WeakSet<Socket>();

function holdReplies(socket: Socket): void {
  if (holding.has(socket)) return;
  holding.add(socket);
  socket.cork();
  setImmediate(() => sendHeldReplies(socket));
}

function sendHeldReplies(socket: Socket): void {
  if (!holding.delete(socket)) return;
  socket.uncork();
}

type Proto = typeof SMTPConnection.prototype & { posternPatched?: boolean };
const proto = SMTPConnection.prototype as Proto;

if (!proto.posternPatched) {
  proto.posternPatched = true;
  const parse = proto._parseAddressCommand;
  proto._parseAddressCommand = function (this: SMTPConnection, rawName: string, rawCommand: Buffer | string) {
    const command = rawCommand.toString();
    const path = splitPath(command);
    const quoted = path !== null && path.address.startsWith('"');
    // The library cannot parse a quoted local part: it sees a stand-in with the same domain.
    const given = quoted ? `${path.head}<postern-quoted${path.address.slice(path.address.lastIndexOf('@'))}>${path.tail}` : command;
    const parsed = parse.call(this, rawName, given);
    if (parsed === false || !parsed.address || path === null) return parsed;
    parsed.address = path.address;
    return parsed;
  };
  const send = proto.send;
  proto.send = function (this: SMTPConnection, code: number, data?: string | string[] | null, context?: string | false): void {
    const socket = (this as unknown as { _socket?: Socket })._socket;
    if (socket) {
      if (code === 250 || code === 354) holdReplies(socket);
      else sendHeldReplies(socket);
    }
    send.call(this, code, data, typeof data === 'string' && ENHANCED.test(data) ? false : context);
    if (code >= 400) {
      const self = this as unknown as { _server: object; session: SMTPServerSession & { error?: string } };
      // The library keeps the reply it just wrote (with its enhanced code) in session.error.
      refusalHooks.get(self._server)?.(self.session, self.session.error ?? `${code} ${Array.isArray(data) ? data.join(' ') : (data ?? '')}`);
    }
  };
}
