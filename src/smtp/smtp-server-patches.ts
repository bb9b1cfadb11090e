/**
 * Two narrow corrections to smtp-server's address handling, installed once on its connection
 * class when the listener module loads. Both exist because Postern's name rule (tls/names.ts)
 * must see an envelope address exactly as the client sent it.
 *
 * 1. The raw address. The library converts the domain of every MAIL/RCPT address with
 *    punycode.js `toUnicode`, which also maps the IDNA2003 dots (U+3002, U+FF0E, U+FF61) to
 *    "." — so `a@example。com` would reach Postern as `a@example.com`, one name taken for
 *    another. After the library has parsed a command, the address it returns is replaced by the
 *    address as written in the command (angle brackets and any source route removed); the
 *    listener then checks it with the strict rule and refuses what is not a host name.
 * 2. Enhanced status codes on the library's own syntax refusals ("501 Error: Bad recipient
 *    address syntax" for a control character or a path without a single `@`): they get 5.1.3 /
 *    5.1.7 like every refusal of Postern's own, so a client sees one form whichever layer refused.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const SYNTAX_CODES: Record<string, string> = { MAILBOX_SYNTAX_ERROR: '5.1.3', SENDER_SYNTAX_ERROR: '5.1.7' };
const SOURCE_ROUTE = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/;

/** The address inside `MAIL FROM:<...>` / `RCPT TO:<...>`, as the library finds it, unconverted. */
export function rawPathAddress(command: string): string | null {
  const colon = command.indexOf(':');
  if (colon === -1) return null;
  const path = command.slice(colon + 1).trim().split(/\s+/)[0] ?? '';
  if (!/^<[^<>]*>$/.test(path)) return null;
  return path.slice(1, -1).replace(SOURCE_ROUTE, '');
}

type Proto = typeof SMTPConnection.prototype & { posternPatched?: boolean };
const proto = SMTPConnection.prototype as Proto;

if (!proto.posternPatched) {
  proto.posternPatched = true;
  const parse = proto._parseAddressCommand;
  proto._parseAddressCommand = function (this: SMTPConnection, rawName: string, rawCommand: Buffer | string) {
    const parsed = parse.call(this, rawName, rawCommand);
    if (parsed === false || !parsed.address) return parsed;
    const raw = rawPathAddress(rawCommand.toString());
    // The postmaster special case and anything the library accepted keep their parsed form
    // only when no raw address can be read, which its own checks make impossible.
    if (raw !== null) parsed.address = raw;
    return parsed;
  };
  const send = proto.send;
  proto.send = function (this: SMTPConnection, code: number, data?: string | string[] | null, context?: string | false): void {
    const enhanced = typeof context === 'string' ? SYNTAX_CODES[context] : undefined;
    send.call(this, code, enhanced !== undefined && typeof data === 'string' ? `${enhanced} ${data.replace(/^Error: /, '')}` : data, context);
  };
}
