/**
 * Delivery status notifications (RFC 3464, RFC 3462 multipart/report). Pure: builds the bytes of
 * a bounce message; the queue sends it from the null sender so that it can never bounce itself.
 *
 * buildDsn(i): the whole message — a human-readable part, the message/delivery-status part
 *   (Reporting-MTA, Arrival-Date, and per recipient Final-Recipient, Action, Status,
 *   Diagnostic-Code, Will-Retry-Until for delays) and the original: whole (message/rfc822) when
 *   it is at most `maxCopy` bytes and neither RET=HDRS nor `headersOnly` asks otherwise, else its
 *   headers (text/rfc822-headers).
 * notifyWants(notify, kind): whether a recipient's RFC 3461 NOTIFY parameter allows a DSN of that
 *   kind; a recipient without NOTIFY gets failure DSNs and (when the profile sends them) delay
 *   warnings.
 */
import { escapeText } from '../observe/text.js';

export interface DsnRecipient {
  address: string;
  orcpt?: string | null;
  action: 'failed' | 'delayed';
  status: string;
  diagnostic: string;
  remoteMta?: string;
  /** For `delayed`: when Postern gives up (RFC 3464 §2.3.9). */
  willRetryUntil?: Date;
}

/** NOTIFY=NEVER, or a list without FAILURE / DELAY, refuses that kind of DSN (RFC 3461 §4.1). */
export function notifyWants(notify: string | null | undefined, kind: 'FAILURE' | 'DELAY'): boolean {
  if (!notify || notify.trim() === '') return true;
  const words = notify.toUpperCase().split(',').map((w) => w.trim());
  return !words.includes('NEVER') && words.includes(kind);
}

export interface DsnInput {
  reportingMta: string;
  to: string;
  originalMid: number;
  arrivalDate: Date;
  now: Date;
  envid?: string | null;
  recipients: DsnRecipient[];
  original: Buffer;
  maxCopy: number;
  /** RET=HDRS asks for headers only. */
  headersOnly?: boolean;
  boundarySeed: string;
}

function headersOf(msg: Buffer): Buffer {
  const crlf = msg.indexOf('\r\n\r\n');
  const lf = msg.indexOf('\n\n');
  const end = crlf !== -1 && (lf === -1 || crlf < lf) ? crlf + 2 : lf !== -1 ? lf + 1 : msg.length;
  return msg.subarray(0, end);
}

function rfc5322Date(d: Date): string {
  return d.toUTCString().replace('GMT', '+0000');
}

export function buildDsn(i: DsnInput): Buffer {
  const boundary = `=_postern_${i.boundarySeed}`;
  const failed = i.recipients.some((r) => r.action === 'failed');
  const whole = !i.headersOnly && i.original.length <= i.maxCopy;
  const subject = failed ? 'Undelivered Mail Returned to Sender' : 'Delivery Status Notification (Delay)';
  const human = i.recipients
    .map((r) => `<${escapeText(r.address)}>: ${r.action === 'failed' ? 'delivery failed' : 'delivery delayed'}: ${escapeText(r.diagnostic)}`)
    .join('\r\n');
  const perRecipient = i.recipients
    .map((r) =>
      [
        r.orcpt ? `Original-Recipient: ${escapeText(r.orcpt)}` : null,
        `Final-Recipient: rfc822; ${escapeText(r.address)}`,
        `Action: ${r.action}`,
        `Status: ${r.status}`,
        r.remoteMta ? `Remote-MTA: dns; ${escapeText(r.remoteMta)}` : null,
        `Diagnostic-Code: smtp; ${escapeText(r.diagnostic)}`,
        r.willRetryUntil ? `Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}` : null,
      ]
        .filter((l) => l !== null)
        .join('\r\n'),
    )
    .join('\r\n\r\n');
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${i.reportingMta}>`,
    `To: <${escapeText(i.to)}>`,
    `Subject: ${subject}`,
    `Date: ${i.now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <dsn.${i.originalMid}.${i.boundarySeed}@${i.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is the mail system at ${i.reportingMta}.`,
    '',
    failed
      ? 'Your message could not be delivered to one or more recipients.'
      : 'Your message has not yet been delivered to one or more recipients; delivery will be retried.',
    '',
    human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${i.reportingMta}`,
    i.envid ? `Original-Envelope-Id: ${escapeText(i.envid)}` : null,
    `X-Postern-Queue-ID: ${i.originalMid}`,
    `Arrival-Date: ${i.arrivalDate.toUTCString().replace('GMT', '+0000')}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    `Content-Type: ${whole ? 'message/rfc822' : 'text/rfc822-headers'}`,
    '',
  ]
    .filter((l) => l !== null)
    .join('\r\n');
  const copy = whole ? i.original : headersOf(i.original);
  const tail = `\r\n--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n'), copy, Buffer.from(copy.subarray(-2).toString() === '\r\n' ? '' : '\r\n'), Buffer.from(tail)]);
}
