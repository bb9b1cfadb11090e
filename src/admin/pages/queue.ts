/**
 * Monitor > Message Queue: the recipients by state (and domain), one message (what `postern
 * queue show` shows, never the body), and the operator's actions — Deliver Now (all or one
 * domain), Bounce and Delete (one message or every queued recipient of a domain) — each through
 * a confirmation page that says what will happen, then a POST to the audited QueueService (the
 * CLI's and the API's). Read-only users see no action; a forged POST gets 403.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError } from '../../controls/validate.js';
import { escapeLines, escapeText } from '../../observe/text.js';
import { parseQueueDomain, QueueActionError, recipientsText, showMessage, describeTlsRequired, type ActionResult, type MessageView, type Selection } from '../../queue/control.js';
import type { ListedRecipient, ListedState } from '../../queue/store.js';
import type { AdminContext } from '../context.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';

export const QUEUE = '/monitor/queue';

const STATES = ['pending', 'queued', 'deferred', 'delivered', 'bounced', 'deleted'] as const;
type FilterState = (typeof STATES)[number];
const STATE_LABELS: Record<FilterState, string> = {
  pending: 'Pending (queued and deferred)',
  queued: 'Queued (not yet tried)',
  deferred: 'Deferred (tried, waiting)',
  delivered: 'Delivered',
  bounced: 'Bounced',
  deleted: 'Deleted',
};
const FINAL = new Set<ListedState>(['delivered', 'bounced', 'deleted']);

/** At most this many recipients in the table (the count says how many there are). */
const LIST_LIMIT = 1000;
/** At most this many recipients listed on a confirmation page. */
const CONFIRM_LIMIT = 100;

const plural = (n: number, word: string): string => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A time as the page shows it: ISO-like, UTC, to the second. */
function when(t: number | null): string {
  return t === null ? '' : new Date(t).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}
const iso = (t: number | null): string => (t === null ? '' : new Date(t).toISOString());
/** Text from peers and envelopes: one line, no control or bidirectional-override character. */
const safe = (s: string | null): string => (s === null ? '' : escapeText(s));

/** Where to go back to after an action: only this page's own URLs. */
function safeBack(v: unknown, fallback: string = QUEUE): string {
  return typeof v === 'string' && /^\/monitor\/queue(\/message)?(\?[A-Za-z0-9=&%._~+-]*)?$/.test(v) ? v : fallback;
}

const listUrl = (state: string, domain: string): string => {
  const q = new URLSearchParams();
  if (state !== 'pending') q.set('state', state);
  if (domain !== '') q.set('domain', domain);
  const s = q.toString();
  return s === '' ? QUEUE : `${QUEUE}?${s}`;
};
const messageUrl = (mid: number): string => `${QUEUE}/message?mid=${mid}`;

function parseMid(text: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new ValidationError('MID', text, 'a message number (MID) as the queue lists it');
  return Number(text);
}

/** Exactly one of mid and domain (the page offers no "all" for bounce and delete). */
function selectionOf(src: Record<string, unknown>): { mid: number } | { domain: string } {
  const mid = str(src.mid).trim();
  const domain = str(src.domain).trim();
  if ((mid === '') === (domain === '')) throw new ValidationError('selection', [mid, domain].filter((x) => x !== '').join(' '), 'exactly one of a MID and a domain');
  return mid !== '' ? { mid: parseMid(mid) } : { domain: parseQueueDomain(domain) };
}

interface Row {
  mid: number;
  rid: number;
  from: string;
  to: string;
  state: ListedState;
  attempts: number;
  time: string;
  timeIso: string;
  lastReply: string;
  /** The first row of its message in the table: the message's actions go there. */
  first: boolean;
  pending: boolean;
}

function rowOf(r: ListedRecipient, first: boolean): Row {
  const t = r.nextAttempt ?? r.finishedAt;
  return {
    mid: r.mid,
    rid: r.rid,
    from: `<${safe(r.from)}>`,
    to: safe(r.to),
    state: r.state,
    attempts: r.attempts,
    time: when(t),
    timeIso: iso(t),
    lastReply: safe(r.lastReply),
    first,
    pending: !FINAL.has(r.state),
  };
}

/** How many of each final state a message's recipients have, e.g. "2 delivered, 1 bounced". */
function finalCounts(v: MessageView): string {
  const counts = new Map<string, number>();
  for (const r of v.recipients) if (FINAL.has(r.state)) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s}`).join(', ');
}

/** What an action did, as `postern queue bounce|delete` prints it. */
function actedText(r: ActionResult, verb: string, what: string): string {
  const lines = [`${recipientsText(r.recipients, r.messages.length)} ${verb}${what}.`];
  for (const m of r.messages) {
    const dsn = m.dsns.length ? `; DSN ${m.dsns.map((d) => `MID ${d.mid} to <${safe(d.to)}>`).join(', ')}` : '';
    lines.push(`MID ${m.mid}: ${m.rids.map((rid, i) => `RID ${rid} <${safe(m.to[i] ?? '')}>`).join(', ')}${dsn}`);
  }
  return lines.join('\n');
}

type Action = 'delivernow' | 'bounce' | 'delete';
const ACTION_TITLES: Record<Action, string> = { delivernow: 'Deliver Now', bounce: 'Bounce Recipients', delete: 'Delete Recipients' };
const ACTION_BUTTONS: Record<Action, string> = { delivernow: 'Deliver Now', bounce: 'Bounce', delete: 'Delete' };

interface Plan {
  question: string;
  notes: string[];
  fields: Record<string, string>;
  affected: Row[];
  more: number;
  /** Set when there is nothing to act on: the reason (as the service would say it). */
  nothing?: string;
}

export function registerQueuePages(app: FastifyInstance, ctx: AdminContext, _o: AdminServerOptions): void {
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const refuse = (req: FastifyRequest, reply: FastifyReply) =>
    page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'queue')}; nothing was changed` }, 403);
  const notFound = (req: FastifyRequest, reply: FastifyReply, mid: string) =>
    page(req, reply, 'error', { title: 'Not found', message: `MID ${mid} is not in the queue (nor among the outcomes of the last 7 days)` }, 404);

  // ---- the list ----------------------------------------------------------------------------------
  app.get(QUEUE, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const stateText = str(q.state) === '' ? 'pending' : str(q.state);
    const domainText = str(q.domain);
    const errors: Record<string, string> = {};
    const state = (STATES as readonly string[]).includes(stateText) ? (stateText as FilterState) : undefined;
    if (!state) errors.state = new ValidationError('state', stateText, STATES.join(', ')).message;
    let domain: string | undefined;
    if (domainText.trim() !== '') {
      try {
        domain = parseQueueDomain(domainText);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        errors.domain = e.message;
      }
    }
    const base = {
      title: 'Message Queue',
      active: QUEUE,
      base: QUEUE,
      states: STATES.map((s) => ({ value: s, label: STATE_LABELS[s] })),
      values: { state: stateText, domain: domainText },
      errors,
    };
    if (Object.keys(errors).length > 0) return page(req, reply, 'queue-list', { ...base, rows: [], shown: false }, 400);

    const listed = ctx.queue.list({ state, domain });
    const seen = new Set<number>();
    const rows = listed.slice(0, LIST_LIMIT).map((r) => {
      const first = !seen.has(r.mid);
      seen.add(r.mid);
      return rowOf(r, first);
    });
    const messages = new Set(listed.map((r) => r.mid)).size;
    const back = listUrl(state!, domain ?? '');
    const finalState = state === 'delivered' || state === 'bounced' || state === 'deleted';
    return page(req, reply, 'queue-list', {
      ...base,
      shown: true,
      rows,
      state,
      domain: domain ?? '',
      finalState,
      countText: `${recipientsText(listed.length, messages)} ${state}${domain ? ` for ${domain}` : ''}`,
      truncated: listed.length > rows.length ? `Showing the first ${plural(rows.length, 'recipient')} of ${listed.length.toLocaleString('en-US')}; choose a domain to see fewer.` : '',
      back,
      pendingCount: state === 'pending' && !domain ? listed.length : ctx.queue.queuedIn({ domain }).length,
    });
  });

  // ---- one message ---------------------------------------------------------------------------------
  app.get(`${QUEUE}/message`, async (req, reply) => {
    const midText = str((req.query as Record<string, unknown>).mid).trim();
    let mid: number;
    try {
      mid = parseMid(midText);
    } catch (e) {
      if (e instanceof ValidationError) return notFound(req, reply, midText);
      throw e;
    }
    const v = showMessage(ctx.queue, mid);
    if (!v) return notFound(req, reply, String(mid));
    const pending = v.recipients.filter((r) => !FINAL.has(r.state)).length;
    return page(req, reply, 'queue-message', {
      title: `Message ${mid}`,
      active: QUEUE,
      base: QUEUE,
      mid,
      inQueue: v.inQueue,
      from: `<${safe(v.from)}>`,
      size: v.size === null ? '' : `${v.size.toLocaleString('en-US')} bytes`,
      received: when(v.receivedAt),
      receivedIso: iso(v.receivedAt),
      client: safe(v.client),
      dsnParams: v.envid !== null || v.ret !== null ? safe(`${v.ret ? `RET=${v.ret}` : ''}${v.ret && v.envid ? ' ' : ''}${v.envid ? `ENVID=${v.envid}` : ''}`) : '',
      isBounce: v.isBounce === true,
      tlsRequired: v.tlsRequired ? describeTlsRequired(v.tlsRequired) : '',
      recipients: v.recipients.map((r) => ({
        rid: r.rid,
        to: safe(r.to),
        state: r.state,
        attempts: r.attempts,
        time: when(r.nextAttempt ?? r.finishedAt),
        timeIso: iso(r.nextAttempt ?? r.finishedAt),
        lastReply: safe(r.lastReply),
      })),
      headerText: v.headerText === null ? null : escapeLines(v.headerText.replace(/\r\n/g, '\n').replace(/\n$/, '')),
      pending,
      final: finalCounts(v),
      back: messageUrl(mid),
    });
  });

  // ---- actions: confirmation (GET), then the change (POST) ------------------------------------------
  const affectedRows = (rows: ListedRecipient[]) => {
    const seen = new Set<number>();
    return rows.slice(0, CONFIRM_LIMIT).map((r) => {
      const first = !seen.has(r.mid);
      seen.add(r.mid);
      return rowOf(r, first);
    });
  };

  /** What the action would do now, from the queue as it is. */
  const plan = (action: Action, sel: Selection): Plan | 'unknown' => {
    if (action === 'delivernow') {
      const domain = 'domain' in sel ? sel.domain : undefined;
      const rows = ctx.queue.list({ state: 'pending', domain });
      const messages = new Set(rows.map((r) => r.mid)).size;
      const counters = domain === undefined ? 'all destination counters' : `the destination counters of ${domain}`;
      return {
        question:
          rows.length === 0
            ? `Nothing is queued${domain === undefined ? '' : ` for ${domain}`}. Reset ${counters}?`
            : `Make ${recipientsText(rows.length, messages)}${domain === undefined ? ' in the queue' : ` queued for ${domain}`} due now and reset ${counters}?`,
        notes: ['A running gateway picks this up within a second and tries these recipients at once, within the destination limits.'],
        fields: domain === undefined ? {} : { domain },
        affected: affectedRows(rows),
        more: Math.max(0, rows.length - CONFIRM_LIMIT),
      };
    }
    const verb = action === 'bounce' ? 'Bounce' : 'Delete';
    const failNote = 'Each recipient fails now with 5.0.0 "bounced by the administrator".';
    const profileNote = ' Whether a DSN goes out also depends on the destination\'s bounce profile and each recipient\'s NOTIFY; none is ever sent for a DSN or to the null sender.';
    const deleteNote = 'The recipients are removed from the queue and recorded as deleted; nobody is told.';
    if ('mid' in sel) {
      const v = showMessage(ctx.queue, sel.mid);
      if (!v) return 'unknown';
      const rows: ListedRecipient[] = v.recipients.filter((r) => !FINAL.has(r.state)).map((r) => ({ ...r, mid: sel.mid, from: v.from }));
      const fields = { mid: String(sel.mid) };
      if (rows.length === 0) {
        const final = finalCounts(v);
        return { question: '', notes: [], fields, affected: [], more: 0, nothing: `MID ${sel.mid} has no queued recipient to ${action}${final ? ` (${final})` : ''}` };
      }
      const dsn =
        action === 'delete'
          ? ' No DSN is sent.'
          : v.isBounce
            ? ' No DSN is sent: the message is itself a DSN.'
            : v.from === ''
              ? ' No DSN is sent: the message has the null sender.'
              : ` A DSN is sent to the sender <${safe(v.from)}>.`;
      const noDsn = v.isBounce === true || v.from === '';
      return {
        question: `${verb} ${plural(rows.length, 'recipient')} of MID ${sel.mid}?${dsn}`,
        notes: [action === 'delete' ? deleteNote : failNote + (noDsn ? '' : profileNote)],
        fields,
        affected: affectedRows(rows),
        more: Math.max(0, rows.length - CONFIRM_LIMIT),
      };
    }
    if ('domain' in sel) {
      const rows = ctx.queue.list({ state: 'pending', domain: sel.domain });
      const fields = { domain: sel.domain };
      if (rows.length === 0) return { question: '', notes: [], fields, affected: [], more: 0, nothing: `nothing is queued for ${sel.domain}` };
      const messages = new Set(rows.map((r) => r.mid)).size;
      return {
        question: `${verb} ${recipientsText(rows.length, messages)} queued for ${sel.domain}?${action === 'bounce' ? ' A DSN is sent to each sender.' : ' No DSN is sent.'}`,
        notes: [action === 'delete' ? deleteNote : failNote + profileNote],
        fields,
        affected: affectedRows(rows),
        more: Math.max(0, rows.length - CONFIRM_LIMIT),
      };
    }
    return 'unknown';
  };

  const confirmPage = (req: FastifyRequest, reply: FastifyReply, action: Action, p: Plan, back: string, status = 200) =>
    page(
      req,
      reply,
      'queue-confirm',
      {
        title: ACTION_TITLES[action],
        active: QUEUE,
        action: `${QUEUE}/${action}`,
        button: ACTION_BUTTONS[action],
        danger: action !== 'delivernow',
        ...p,
        fields: { ...p.fields, back },
        back,
      },
      status,
    );

  for (const action of ['delivernow', 'bounce', 'delete'] as const) {
    app.get(`${QUEUE}/${action}`, async (req, reply) => {
      if (!may(req.principal, 'queue')) return refuse(req, reply);
      const q = req.query as Record<string, unknown>;
      const back = safeBack(q.back);
      let sel: Selection;
      if (action === 'delivernow') {
        const d = str(q.domain).trim();
        sel = d === '' ? { all: true } : { domain: parseQueueDomain(d) };
      } else {
        sel = selectionOf(q);
      }
      const p = plan(action, sel);
      if (p === 'unknown') return notFound(req, reply, str(q.mid));
      return confirmPage(req, reply, action, p, back, p.nothing ? 409 : 200);
    });
  }

  /** The action found nothing to act on (changed since the confirmation): say why, change nothing. */
  const nothingDone = (req: FastifyRequest, reply: FastifyReply, action: Action, sel: Selection, why: string, back: string) =>
    confirmPage(req, reply, action, { question: '', notes: [], fields: 'mid' in sel ? { mid: String(sel.mid) } : 'domain' in sel ? { domain: sel.domain } : {}, affected: [], more: 0, nothing: why }, back, 409);

  app.post(`${QUEUE}/delivernow`, async (req, reply) => {
    if (!may(req.principal, 'queue')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const d = str(b.domain).trim();
    const domain = d === '' ? undefined : parseQueueDomain(d);
    const r = ctx.services(by(req)).queue.deliverNow(domain);
    const counters = domain === undefined ? 'All destination counters' : `The destination counters of ${domain}`;
    const pickup = 'are reset (a running gateway picks this up within a second).';
    notify(
      req,
      r.recipients === 0
        ? `Nothing is queued${domain === undefined ? '' : ` for ${domain}`}. ${counters} ${pickup}`
        : `${recipientsText(r.recipients, r.messages)}${domain === undefined ? '' : ` for ${domain}`} made due now. ${counters} ${pickup}`,
    );
    return reply.redirect(safeBack(b.back));
  });

  /** Bounce and Delete: the same selection, checks and answers; only the service call and the notice differ. */
  const act = (action: 'bounce' | 'delete', run: (req: FastifyRequest, sel: Selection) => ActionResult, said: (r: ActionResult) => string) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      if (!may(req.principal, 'queue')) return refuse(req, reply);
      const b = (req.body ?? {}) as Record<string, unknown>;
      const back = safeBack(b.back);
      const sel = selectionOf(b);
      if ('mid' in sel && !showMessage(ctx.queue, sel.mid)) return notFound(req, reply, String(sel.mid));
      let r: ActionResult;
      try {
        r = run(req, sel);
      } catch (e) {
        if (e instanceof QueueActionError) return nothingDone(req, reply, action, sel, e.message, back);
        throw e;
      }
      notify(req, said(r));
      return reply.redirect(back);
    };

  app.post(
    `${QUEUE}/bounce`,
    act(
      'bounce',
      (req, sel) => ctx.services(by(req)).queue.bounce(ctx.config.snapshot(), sel, { hostname: ctx.hostname }),
      (r) => {
        const dsns = r.messages.reduce((n, m) => n + m.dsns.length, 0);
        return actedText(r, 'bounced', ` (5.0.0 bounced by the administrator), ${dsns} DSN${dsns === 1 ? '' : 's'} queued`);
      },
    ),
  );
  app.post(`${QUEUE}/delete`, act('delete', (req, sel) => ctx.services(by(req)).queue.delete(sel), (r) => actedText(r, 'deleted', ' (no DSN)')));
}
