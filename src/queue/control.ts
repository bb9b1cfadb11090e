/**
 * Operator actions on the queue (SPEC §5: list, show, deliver now, bounce, delete), shared by
 * `postern queue` and, later, the administration API. Each action changes the queue in one
 * write transaction and writes what it did to the mail log as `queue-action` events (plus
 * `bounced` and `dsn-created`, as delivery does), so it works whether or not a gateway runs.
 *
 * Exports and their contract:
 * - showMessage(queue, mid, { body }) -> MessageView | undefined: the message's envelope,
 *   each recipient (queued/deferred/delivered/bounced/deleted, attempts, next attempt, last
 *   reply) and its header fields; the body only when asked. A message that has left the queue
 *   is shown from history (`inQueue: false`, no headers). undefined = Postern never had it or
 *   history has forgotten it.
 * - deliverNow(queue, log, domain?, now?) -> { recipients, messages }: makes every queued
 *   recipient (of `domain`) due now and asks the running gateway, through the queue_control
 *   table it polls, to reset the destination counters (`engine.resetLimits(domain)`).
 * - bounceQueued(queue, log, snapshot, selection, { hostname, now? }) -> ActionResult: final
 *   failure now, 5.0.0 "bounced by the administrator", with an RFC 3464 DSN to the sender as
 *   delivery would make it (same buildDsn and rules: the destination's bounce profile — alternate
 *   address, copy size, hard-bounce switch —, the recipient's NOTIFY, never a DSN for a DSN or
 *   to the null sender), inserted in the same transaction as the final marks.
 * - deleteQueued(queue, log, selection) -> ActionResult: removed without a DSN; state
 *   `deleted` in history.
 * - Selection: { mid } | { domain } | { all: true }. When nothing matched, bounceQueued and
 *   deleteQueued throw QueueActionError saying why (unknown MID, MID with no queued recipient,
 *   nothing queued for the domain); `{ all: true }` on an empty queue is not an error.
 * - recipientsText(n, m) -> "3 recipients of 2 messages".
 * Recipients no longer queued when the transaction runs (delivered meanwhile) are left alone;
 * later outcomes of a delivery in flight cannot bring a bounced or deleted recipient back
 * (QueueStore.record only changes recipients still queued).
 */
import { randomBytes } from 'node:crypto';
import { buildDsn, notifyWants } from '../bounce/dsn.js';
import { dsnAddressOf } from '../bounce/profile.js';
import { ValidationError } from '../controls/validate.js';
import type { ConfigSnapshot } from '../config/store.js';
import { resolvePolicy, type DeliveryPolicy } from '../delivery/policy.js';
import type { EventSink } from '../observe/maillog.js';
import { normaliseDomain } from '../tls/names.js';
import { headerFields, headerSection, type HeaderField } from './headers.js';
import type { ListedRecipient, MessageInfo, NewMessage, QueueStore, QueuedRecipient, QueuedSelection, TlsRequired } from './store.js';

export { headerFields, headerSection, type HeaderField };

export type Selection = { mid: number } | { domain: string } | { all: true };

/** A recipient as `queue show` lists it: a queue-list row without the message's own fields. */
export type ShownRecipient = Omit<ListedRecipient, 'mid' | 'from'>;


/** What the sender asked of TLS, for people (`queue show`, the page). */
export function describeTlsRequired(t: TlsRequired): string {
  return t === 'requiretls'
    ? 'REQUIRETLS (RFC 8689): delivered only over verified TLS to a securely found server that offers REQUIRETLS, else returned with 5.7.30'
    : "TLS-Required: No (RFC 8689): the recipient domain's MTA-STS and DANE policies are not applied; the table's TLS setting is";
}

export interface MessageView {
  mid: number;
  /** false: every recipient is final and the message has left the queue (history only). */
  inQueue: boolean;
  from: string;
  size: number | null;
  receivedAt: number | null;
  client: string | null;
  isBounce: boolean | null;
  /** RFC 8689: REQUIRETLS, or the header TLS-Required: No; null for neither (or out of the queue). */
  tlsRequired: TlsRequired | null;
  envid: string | null;
  ret: string | null;
  recipients: ShownRecipient[];
  /** The header section as stored (with Postern's Received line); null once out of the queue. */
  headerText: string | null;
  headers: HeaderField[];
  /** The whole message, only when asked for. */
  message?: Buffer;
}

export interface ActedMessage {
  mid: number;
  rids: number[];
  to: string[];
  /** The DSNs made for these recipients (bounce only; one per bounce profile involved). */
  dsns: { mid: number; to: string }[];
}

export interface ActionResult {
  recipients: number;
  messages: ActedMessage[];
}

/** What went wrong with an operator's request: the message says it in the operator's terms. */
export class QueueActionError extends Error {}

export const BOUNCE_STATUS = '5.0.0';
export const BOUNCE_REASON = 'bounced by the administrator';
export const DELETE_REPLY = 'deleted by the administrator';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function recipientsText(recipients: number, messages: number): string {
  return `${plural(recipients, 'recipient')} of ${plural(messages, 'message')}`;
}


export function showMessage(queue: QueueStore, mid: number, o: { body?: boolean } = {}): MessageView | undefined {
  const info = queue.message(mid);
  const history = queue.historyOf(mid);
  const finished = new Map(history.map((h) => [h.rid, h.finishedAt]));
  if (!info) {
    const first = history[0];
    if (!first) return undefined;
    return {
      mid,
      inQueue: false,
      from: first.from,
      size: null,
      receivedAt: null,
      client: null,
      isBounce: null,
      tlsRequired: null,
      envid: null,
      ret: null,
      recipients: history.map((h) => ({
        rid: h.rid,
        to: h.to,
        domain: h.domain,
        state: h.state,
        attempts: h.attempts,
        nextAttempt: null,
        lastReply: h.lastReply,
        finishedAt: h.finishedAt,
      })),
      headerText: null,
      headers: [],
    };
  }
  const body = queue.body(mid) ?? Buffer.alloc(0);
  const headerText = headerSection(body);
  const view: MessageView = {
    mid,
    inQueue: true,
    from: info.sender,
    size: info.size,
    receivedAt: info.receivedAt,
    client: info.client,
    isBounce: info.isBounce,
    tlsRequired: info.tlsRequired,
    envid: info.envid,
    ret: info.ret,
    recipients: queue.recipientsOf(mid).map((r) => ({
      rid: r.rid,
      to: r.address,
      domain: r.domain,
      state: r.state === 'queued' ? (r.attempts > 0 ? 'deferred' : 'queued') : r.state,
      attempts: r.attempts,
      nextAttempt: r.state === 'queued' ? r.nextAttempt : null,
      lastReply: r.lastReply,
      finishedAt: r.state === 'queued' ? null : (finished.get(r.rid) ?? null),
    })),
    headerText,
    headers: headerFields(headerText),
  };
  if (o.body) view.message = body;
  return view;
}

/** A domain as the queue stores recipient domains (lower-case A-labels); throws a ValidationError when it is none. */
export function parseQueueDomain(input: string): string {
  const d = normaliseDomain(input.trim());
  if (d === null) throw new ValidationError('domain', input, 'a domain name (example.com)');
  return d;
}

export function deliverNow(queue: QueueStore, log: EventSink, domain?: string, now = Date.now()): { recipients: number; messages: number } {
  const what = domain === undefined ? 'in the queue' : `for ${domain}`;
  const counters = domain === undefined ? 'all destination counters' : `the destination counters of ${domain}`;
  // Written (and flushed) before the request is committed, so that the gateway's line about
  // resetting the counters can only come after this one in the mail log.
  return queue.requestDeliverNow(now, domain, (r) => {
    log.write({
      event: 'queue-action',
      action: 'delivernow',
      detail: `${recipientsText(r.recipients, r.messages)} ${what} made due now; ${counters} reset`,
    });
    log.flush?.();
  });
}

function toStoreSelection(sel: Selection): QueuedSelection {
  if ('mid' in sel) return { messageId: sel.mid };
  if ('domain' in sel) return { domain: sel.domain };
  return {};
}

/** Why nothing matched: an error unless the selection was the whole (empty) queue. */
function nothingMatched(queue: QueueStore, sel: Selection, verb: string): ActionResult {
  if ('mid' in sel) {
    const history = queue.historyOf(sel.mid);
    if (!queue.message(sel.mid) && history.length === 0) throw new QueueActionError(`MID ${sel.mid} is not in the queue`);
    const counts = new Map<string, number>();
    for (const h of history) counts.set(h.state, (counts.get(h.state) ?? 0) + 1);
    const final = [...counts].map(([s, n]) => `${n} ${s}`).join(', ');
    throw new QueueActionError(`MID ${sel.mid} has no queued recipient to ${verb}${final ? ` (${final})` : ''}`);
  }
  if ('domain' in sel) throw new QueueActionError(`nothing is queued for ${sel.domain}`);
  return { recipients: 0, messages: [] };
}

function group(rows: QueuedRecipient[]): Map<number, QueuedRecipient[]> {
  const byMessage = new Map<number, QueuedRecipient[]>();
  for (const r of rows) {
    const list = byMessage.get(r.messageId) ?? [];
    list.push(r);
    byMessage.set(r.messageId, list);
  }
  return byMessage;
}

const domainOf = (address: string): string => {
  const at = address.lastIndexOf('@');
  const d = at === -1 ? '' : address.slice(at + 1);
  return normaliseDomain(d) ?? d.toLowerCase();
};

export function bounceQueued(
  queue: QueueStore,
  log: EventSink,
  snapshot: ConfigSnapshot,
  sel: Selection,
  o: { hostname: string; now?: number },
): ActionResult {
  const now = o.now ?? Date.now();
  const policies = new Map<string, DeliveryPolicy>();
  const policy = (domain: string): DeliveryPolicy => {
    let p = policies.get(domain);
    if (!p) policies.set(domain, (p = resolvePolicy(snapshot, domain)));
    return p;
  };
  /** Which DSN (index into the made list) covers which message. */
  const dsnOf = new Map<number, { index: number; to: string }[]>();
  const reply = `${BOUNCE_STATUS} ${BOUNCE_REASON}`;
  const { recipients, made } = queue.finishByOperator(toStoreSelection(sel), 'bounced', reply, (rows) => {
    const dsns: NewMessage[] = [];
    for (const [mid, list] of group(rows)) {
      const info: MessageInfo | undefined = queue.message(mid);
      if (!info) continue;
      // One DSN per message and bounce profile, as delivery makes one per message and destination.
      const byProfile = new Map<string, { policy: DeliveryPolicy; rows: QueuedRecipient[] }>();
      for (const r of list) {
        const p = policy(r.domain);
        const g = byProfile.get(p.profile.name) ?? { policy: p, rows: [] };
        g.rows.push(r);
        byProfile.set(p.profile.name, g);
      }
      for (const { policy: p, rows: all } of byProfile.values()) {
        const to = dsnAddressOf(p.profile, info.sender, info.isBounce);
        const bounced = all.filter((r) => notifyWants(r.notify, 'FAILURE'));
        if (to === null || !p.profile.sendHardBounces || bounced.length === 0) continue;
        const entry = dsnOf.get(mid) ?? [];
        entry.push({ index: dsns.length, to });
        dsnOf.set(mid, entry);
        dsns.push({
          sender: '',
          receivedAt: now,
          isBounce: true,
          body: buildDsn({
            reportingMta: o.hostname,
            to,
            originalMid: mid,
            arrivalDate: new Date(info.receivedAt),
            now: new Date(now),
            envid: info.envid,
            recipients: bounced.map((r) => ({ address: r.address, orcpt: r.orcpt, action: 'failed', status: BOUNCE_STATUS, diagnostic: BOUNCE_REASON })),
            original: queue.body(mid) ?? Buffer.alloc(0),
            maxCopy: p.profile.maxBounceCopy,
            headersOnly: info.ret === 'HDRS',
            boundarySeed: randomBytes(8).toString('hex'),
          }),
          recipients: [{ address: to, domain: domainOf(to) }],
        });
      }
    }
    return dsns;
  });
  if (recipients.length === 0) return nothingMatched(queue, sel, 'bounce');
  const messages: ActedMessage[] = [];
  for (const [mid, list] of group(recipients)) {
    const dsns = (dsnOf.get(mid) ?? []).map((d) => ({ mid: made[d.index]!, to: d.to }));
    const acted: ActedMessage = { mid, rids: list.map((r) => r.rid), to: list.map((r) => r.address), dsns };
    messages.push(acted);
    const dsnText = dsns.length ? `; DSN ${dsns.map((d) => `MID ${d.mid} to <${d.to}>`).join(', ')}` : '; no DSN (the message is a DSN or has the null sender, NOTIFY refuses it, or the bounce profile sends none)';
    log.write({
      event: 'queue-action',
      action: 'bounce',
      detail: `MID ${mid} RID [${acted.rids.join(', ')}] ${acted.to.map((t) => `<${t}>`).join(', ')}: ${reply}${dsnText}`,
    });
    for (const r of list) log.write({ event: 'bounced', mid, rid: r.rid, to: r.address, enhanced: BOUNCE_STATUS, reason: BOUNCE_REASON });
    for (const d of dsns) log.write({ event: 'dsn-created', mid: d.mid, original: mid, to: d.to });
  }
  return { recipients: recipients.length, messages };
}

export function deleteQueued(queue: QueueStore, log: EventSink, sel: Selection): ActionResult {
  const { recipients } = queue.finishByOperator(toStoreSelection(sel), 'deleted', DELETE_REPLY);
  if (recipients.length === 0) return nothingMatched(queue, sel, 'delete');
  const messages: ActedMessage[] = [];
  for (const [mid, list] of group(recipients)) {
    const acted: ActedMessage = { mid, rids: list.map((r) => r.rid), to: list.map((r) => r.address), dsns: [] };
    messages.push(acted);
    log.write({
      event: 'queue-action',
      action: 'delete',
      detail: `MID ${mid} RID [${acted.rids.join(', ')}] ${acted.to.map((t) => `<${t}>`).join(', ')}: ${DELETE_REPLY}, no DSN`,
    });
  }
  return { recipients: recipients.length, messages };
}
