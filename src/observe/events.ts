/**
 * Mail log events and their text form in the appliance's style (SPEC §9). Pure: the writer
 * lives in maillog.ts. Each event has one text line and one JSON line with the same facts.
 */
import type { TlsMode } from '../controls/types.js';
import type { SendStatus } from '../tlsrpt/sends.js';

export type MailEvent =
  | { event: 'incoming-connection'; icid: number; interface: string; address: string; port: number }
  | { event: 'incoming-refused'; icid: number; address: string; reason: string }
  /** `recipients` holds at most RECIPIENTS_PER_LINE; the rest follow as message-recipients events. */
  | { event: 'message-accepted'; icid: number; mid: number; from: string; recipients: string[]; size: number; receivedId: string; total: number; tlsRequired?: 'requiretls' | 'no' }
  | { event: 'message-recipients'; icid: number; mid: number; recipients: string[]; first: number; total: number }
  | { event: 'incoming-close'; icid: number }
  | { event: 'delivery-cut'; dcid: number; domain: string; detail: string }
  | { event: 'connection'; dcid: number; interface: string; address: string; port: number; host: string; domain: string; tls?: TlsMode }
  | { event: 'connection-failed'; domain: string; host: string; address: string; port: number; reason: string; tls?: TlsMode }
  | { event: 'tls-success'; dcid: number; domain: string; protocol: string; cipher: string; verified: 'yes' | 'no' | 'not-attempted'; by?: string }
  /** A host's TLS policy when DANE or MTA-STS governs it, or why it is not used. */
  | { event: 'tls-policy'; domain: string; host: string; detail: string }
  /** A recipient domain's MTA-STS policy fetched, or a fetch that failed. */
  | { event: 'sts-policy'; domain: string; detail: string }
  | { event: 'tls-failed'; dcid: number; domain: string; reason: string; outcome: 'clear-text' | 'refused' | 'dropped' | 'encrypted' }
  | { event: 'tls-skipped'; dcid: number; domain: string; reason: string }
  | { event: 'verify-failed'; dcid: number; domain: string; reason: string }
  /** `sender`: the envelope sender as sent, when it is not the queued one (a bounce-verification tag). */
  | { event: 'delivery-start'; dcid: number; mid: number; rids: number[]; sender?: string; requireTls?: boolean }
  | { event: 'message-done'; dcid: number; mid: number; rids: number[]; reply: string }
  | { event: 'delayed'; dcid?: number; mid: number; rid: number; to: string; enhanced: string; reason: string; nextAttempt: string }
  | { event: 'bounced'; dcid?: number; mid: number; rid: number; to: string; enhanced: string; reason: string }
  | { event: 'connection-closed'; dcid: number }
  /** A reused connection was gone at the next message: the message waits for a new one (not a retry). */
  | { event: 'connection-reused-closed'; dcid: number; mid: number; detail: string }
  | { event: 'connection-over-share'; dcid: number; domain: string }
  | { event: 'queue-action'; action: string; detail: string }
  | { event: 'dsn-created'; mid: number; original: number; to: string }
  | { event: 'config-reloaded'; detail: string }
  /** A condition that stops normal work (the disk is full): said once when it starts, once when it ends. */
  | { event: 'condition-start'; condition: string; detail: string }
  | { event: 'condition-end'; condition: string; detail: string }
  | { event: 'log-recovered'; file: string; lost: number; seconds: number }
  | { event: 'gateway-start'; version: string; detail: string }
  | { event: 'gateway-stop'; version: string; detail: string }
  | { event: 'alert-sent'; alertClass: string; severity: string; domain: string; mid: number; to: string[]; detail: string }
  | { event: 'alert-suppressed'; alertClass: string; severity: string; domain: string; reason: string }
  /** A daily TLS report (RFC 8460) of one policy domain: what became of it at one destination ('' for the domain itself). */
  | { event: 'tlsrpt-report'; domain: string; day: string; destination: string; status: SendStatus; detail: string }
  /** The public listener's decision on a recipient's bounce-verification tag (SPEC §8). */
  | { event: 'bounce-verification'; icid: number; to: string; deliverTo: string; result: 'valid' | 'invalid' | 'untagged'; kind: 'bounce' | 'reply'; action: 'accepted' | 'rejected' | 'header'; reason: string };

export function formatEvent(e: MailEvent): string {
  switch (e.event) {
    case 'incoming-connection':
      return `New SMTP ICID ${e.icid} interface ${e.interface} address ${e.address} port ${e.port}`;
    case 'incoming-refused':
      return `ICID ${e.icid} refused: ${e.reason} (address ${e.address})`;
    case 'message-accepted':
      return `Start MID ${e.mid} ICID ${e.icid} From: <${e.from}> To: ${e.recipients.map((r) => `<${r}>`).join(', ')}${
        e.total > e.recipients.length ? ` (and ${e.total - e.recipients.length} more on the next lines)` : ''
      } ready ${e.size} bytes, Received id ${e.receivedId}${e.tlsRequired === 'requiretls' ? ', REQUIRETLS' : e.tlsRequired === 'no' ? ', TLS-Required: No' : ''}`;
    case 'message-recipients':
      return `MID ${e.mid} ICID ${e.icid} To: ${e.recipients.map((r) => `<${r}>`).join(', ')} (recipients ${e.first}–${e.first + e.recipients.length - 1} of ${e.total})`;
    case 'incoming-close':
      return `ICID ${e.icid} close`;
    case 'delivery-cut':
      return `DCID ${e.dcid} delivery to ${e.domain} cut off: ${e.detail}`;
    case 'connection':
      return `New SMTP DCID ${e.dcid} interface ${e.interface} address ${e.address} port ${e.port} (host ${e.host} for ${e.domain})`;
    case 'connection-failed':
      return `Connection failed to ${e.host} address ${e.address} port ${e.port} for ${e.domain}: ${e.reason}`;
    case 'tls-success':
      return `DCID ${e.dcid} TLS success protocol ${e.protocol} cipher ${e.cipher} for ${e.domain}${
        e.verified === 'yes' ? (e.by ? ` (verified: ${e.by})` : ' (verified)') : e.verified === 'no' ? ' (not verified)' : ''
      }`;
    case 'tls-policy':
      return `TLS policy for ${e.domain} host ${e.host}: ${e.detail}`;
    case 'sts-policy':
      return `MTA-STS policy for ${e.domain}: ${e.detail}`;
    case 'tls-failed':
      return `DCID ${e.dcid} TLS failed: ${e.reason} for ${e.domain} (${describeOutcome(e.outcome)})`;
    case 'tls-skipped':
      return `DCID ${e.dcid} TLS skipped for ${e.domain}: ${e.reason}`;
    case 'verify-failed':
      return `DCID ${e.dcid} TLS certificate verification failed for ${e.domain}: ${e.reason}`;
    case 'delivery-start':
      return `Delivery start DCID ${e.dcid} MID ${e.mid} to RID [${e.rids.join(', ')}]${e.sender === undefined ? '' : ` from tagged sender <${e.sender}>`}${e.requireTls ? ' with REQUIRETLS' : ''}`;
    case 'message-done':
      return `Message done DCID ${e.dcid} MID ${e.mid} to RID [${e.rids.join(', ')}] (${e.reply})`;
    case 'delayed':
      return `Delayed: ${e.dcid !== undefined ? `DCID ${e.dcid} ` : ''}MID ${e.mid} to RID ${e.rid} <${e.to}> - ${e.enhanced} - ${e.reason} (next attempt ${e.nextAttempt})`;
    case 'bounced':
      return `Bounced: ${e.dcid !== undefined ? `DCID ${e.dcid} ` : ''}MID ${e.mid} to RID ${e.rid} <${e.to}> - ${e.enhanced} - ${e.reason}`;
    case 'connection-closed':
      return `DCID ${e.dcid} close`;
    case 'connection-reused-closed':
      return `DCID ${e.dcid} reused connection closed by the server (${e.detail}); MID ${e.mid} goes on a new connection`;
    case 'connection-over-share':
      return `DCID ${e.dcid} to ${e.domain} closed after its current message: the cluster's Redis is unreachable and this node is above its share of the connection limit`;
    case 'queue-action':
      return `Queue ${e.action}: ${e.detail}`;
    case 'dsn-created':
      return `MID ${e.mid} DSN for MID ${e.original} to <${e.to}>`;
    case 'config-reloaded':
      return `Configuration reloaded: ${e.detail}`;
    case 'condition-start':
      return `Condition started: ${e.condition}: ${e.detail}`;
    case 'condition-end':
      return `Condition ended: ${e.condition}: ${e.detail}`;
    case 'log-recovered':
      return `Log file ${e.file} can be written again after ${e.seconds} s${e.lost > 0 ? `; ${e.lost} lines were lost while it could not` : ''}`;
    case 'gateway-start':
      return `Postern ${e.version} starting: ${e.detail}`;
    case 'gateway-stop':
      return `Postern ${e.version} stopped: ${e.detail}`;
    case 'alert-sent':
      return `Alert sent MID ${e.mid} to ${e.to.map((t) => `<${t}>`).join(', ')} (${e.alertClass}, ${e.severity}, ${e.domain}): ${e.detail}`;
    case 'alert-suppressed':
      return `Alert not sent (${e.alertClass}, ${e.severity}, ${e.domain}): ${e.reason}`;
    case 'tlsrpt-report': {
      const what = { sent: 'sent', queued: 'queued', retry: 'not sent yet', failed: 'not sent', 'no-record': 'not sent', 'invalid-record': 'not sent', 'other-node': 'left to another node' }[e.status];
      return `TLS report for ${e.domain} of ${e.day}${e.destination ? ` to ${e.destination}` : ''} ${what}: ${e.detail}`;
    }
    case 'bounce-verification': {
      const what = `${e.kind === 'bounce' ? 'bounce' : 'reply'} to <${e.to}>`;
      const action = e.action === 'rejected' ? 'rejected' : e.action === 'header' ? `accepted with the invalid-bounce header, for <${e.deliverTo}>` : `accepted for <${e.deliverTo}>`;
      return `ICID ${e.icid} Bounce verification: ${what}: ${e.result === 'valid' ? 'valid tag' : e.result === 'invalid' ? 'invalid tag' : 'untagged'} (${e.reason}); ${action}`;
    }
  }
}

function describeOutcome(o: 'clear-text' | 'refused' | 'dropped' | 'encrypted'): string {
  switch (o) {
    case 'clear-text':
      return 'continuing in clear text';
    case 'refused':
      return 'not delivered on this connection';
    case 'dropped':
      return 'connection dropped, no clear-text fallback';
    case 'encrypted':
      return 'delivering encrypted';
  }
}

/** Recipients named on one log line; a message with more is logged over several lines. */
export const RECIPIENTS_PER_LINE = 20;

/** `Sat Nov 28 08:02:37 2026`, the appliance's timestamp. */
export function logTimestamp(d: Date): string {
  // Every line of a busy second has the same text: made once per second.
  const second = Math.floor(d.getTime() / 1000);
  if (second === stamp.second) return stamp.text;
  const s = d.toUTCString(); // "Sat, 28 Nov 2026 08:02:37 GMT"
  const [wd, day, mon, year, time] = s.replace(',', '').split(' ');
  stamp.second = second;
  stamp.text = `${wd} ${mon} ${day!.padStart(2, ' ')} ${time} ${year}`;
  return stamp.text;
}
const stamp = { second: NaN, text: '' };

export function levelOf(e: MailEvent): 'Info' | 'Warning' {
  return e.event === 'tls-failed' || e.event === 'verify-failed' || e.event === 'bounced' || e.event === 'connection-failed' || e.event === 'condition-start' || e.event === 'incoming-refused' || e.event === 'delivery-cut' || (e.event === 'bounce-verification' && e.result !== 'valid' && e.action !== 'accepted')
    ? 'Warning'
    : 'Info';
}
