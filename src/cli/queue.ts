/**
 * `postern queue`: what is waiting, and what happened to each recipient (SPEC §5).
 *
 *   list [--domain D] [--state S] [--json]     recipients by state (pending = queued + deferred)
 *   show MID [--json] [--body]                 one message: envelope, recipients, headers
 *   delivernow [DOMAIN]                        due now + destination counters reset
 *   bounce MID | --domain D | --all            final failure now, DSN to the sender (5.0.0)
 *   delete MID | --domain D | --all            removed, no DSN (state `deleted` in history)
 *
 * The actions are src/queue/control.ts; this module parses arguments and prints. Each action
 * prints what it did ("3 recipients of 2 messages …") and writes it to the mail log itself
 * (append-mode single-line writes, safe next to a running gateway). A bad request (unknown MID,
 * nothing queued for the domain, not exactly one of MID/--domain/--all) prints why on stderr
 * and exits non-zero (1; 2 for usage errors).
 */
import { hostname as osHostname } from 'node:os';
import { Command, Option } from 'commander';
import { ValidationError } from '../controls/validate.js';
import { MailLog } from '../observe/maillog.js';
import {
  parseQueueDomain,
  recipientsText,
  showMessage,
  describeTlsRequired,
  type ActionResult,
  type MessageView,
  type Selection,
} from '../queue/control.js';
import { QueueStore, type ListedRecipient, type ListedState } from '../queue/store.js';
import { cliBy, recorder } from '../manage/audit.js';
import { QueueService } from '../manage/queue.js';
import { escapeText } from '../observe/text.js';
import { dataDirOption, err, out, outJson, withStore } from './common.js';
import { formatTable, plural } from './format.js';
import { withClusterRedis } from '../cluster/cli-session.js';
import { NODES_KEY, queueKey } from '../cluster/node.js';

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

function parseMid(text: string): number {
  if (!/^[1-9][0-9]*$/.test(text)) throw new ValidationError('MID', text, 'a message number (MID) as `queue list` shows it');
  return Number(text);
}

/** Exactly one of MID, --domain, --all. */
function selection(mid: string | undefined, o: { domain?: string; all?: boolean }): Selection {
  const given = [mid !== undefined, o.domain !== undefined, o.all === true].filter(Boolean).length;
  if (given !== 1) throw new ValidationError('selection', [mid, o.domain, o.all ? '--all' : undefined].filter((x) => x !== undefined).join(' '), 'exactly one of MID, --domain DOMAIN, --all');
  if (mid !== undefined) return { mid: parseMid(mid) };
  if (o.domain !== undefined) return { domain: parseQueueDomain(o.domain) };
  return { all: true };
}

/** The queue actions through their service (audited), acting for the user who runs the command. */
function service(queue: QueueStore, log: MailLog, dataDir: string): QueueService {
  return new QueueService(queue, log, recorder(dataDir, cliBy()));
}

/** Runs an action with the queue and the mail log open, closing both whatever happens. */
async function withQueueAndLog<T>(dataDir: string, fn: (q: QueueStore, log: MailLog) => T): Promise<T> {
  const q = QueueStore.open(dataDir);
  const log = new MailLog(dataDir);
  try {
    return fn(q, log);
  } finally {
    q.close();
    await log.close();
  }
}

function printActed(r: ActionResult, verb: string, what: string): void {
  const lines = [`${recipientsText(r.recipients, r.messages.length)} ${verb}${what}.`];
  for (const m of r.messages) {
    const dsn = m.dsns.length ? `; DSN ${m.dsns.map((d) => `MID ${d.mid} to <${d.to}>`).join(', ')}` : '';
    lines.push(`  MID ${m.mid}: ${m.rids.map((rid, i) => `RID ${rid} <${m.to[i]}>`).join(', ')}${dsn}`);
  }
  out(lines.join('\n') + '\n');
}

function showText(v: MessageView): string {
  // Envelope values are one line each; the message itself keeps its lines (out() escapes them).
  const lines = [`MID ${v.mid}${v.inQueue ? '' : ' (no longer in the queue: every recipient is final)'}`, `From: <${escapeText(v.from)}>`];
  if (v.inQueue) {
    lines.push(`Size: ${v.size} bytes`);
    lines.push(`Received: ${iso(v.receivedAt)}${v.client ? ` from ${v.client}` : ''}`);
    if (v.envid !== null || v.ret !== null) lines.push(escapeText(`DSN parameters:${v.ret ? ` RET=${v.ret}` : ''}${v.envid ? ` ENVID=${v.envid}` : ''}`));
    if (v.isBounce) lines.push('This message is a DSN made by Postern (it is never bounced itself).');
    if (v.tlsRequired) lines.push(`TLS: ${describeTlsRequired(v.tlsRequired)}`);
  }
  lines.push('');
  lines.push(
    formatTable(
      ['RID', 'To', 'State', 'Attempts', 'Next attempt / finished', 'Last reply'],
      v.recipients.map((r) => [String(r.rid), r.to, r.state, String(r.attempts), iso(r.nextAttempt ?? r.finishedAt) ?? '', r.lastReply ?? '']),
    ),
  );
  if (v.message !== undefined) {
    lines.push('', 'Message:', v.message.toString('utf8').replace(/\r\n/g, '\n').replace(/\n$/, ''));
  } else if (v.headerText !== null) {
    lines.push('', 'Headers (the body with --body):', v.headerText.replace(/\r\n/g, '\n').replace(/\n$/, ''));
  }
  return lines.join('\n') + '\n';
}

export function addQueueCommand(program: Command): void {
  const q = program.command('queue').description('the delivery queue: list, show, delivernow, bounce, delete');
  q.command('list')
    .description('recipients by state')
    .addOption(dataDirOption())
    .option('--domain <domain>', 'only this destination domain')
    .addOption(
      new Option('--state <state>', 'pending (queued and deferred), queued, deferred, delivered, bounced, deleted')
        .choices(['pending', 'queued', 'deferred', 'delivered', 'bounced', 'deleted'])
        .default('pending'),
    )
    .option('--json', 'machine-readable output')
    .option('--cluster', "every node's pending recipients (a cluster node's --data-dir)")
    .action(async (o: { dataDir: string; domain?: string; state: ListedState | 'pending'; json?: boolean; cluster?: boolean }) => {
      const domain = o.domain === undefined ? undefined : parseQueueDomain(o.domain);
      if (o.cluster) return listCluster(o.dataDir, o.state, domain, o.json === true);
      const store = QueueStore.open(o.dataDir);
      let rows: ListedRecipient[];
      try {
        rows = store.list({ domain, state: o.state });
      } finally {
        store.close();
      }
      if (o.json) {
        outJson(rows.map((r) => ({ ...r, nextAttempt: iso(r.nextAttempt), finishedAt: iso(r.finishedAt) })));
        return;
      }
      out(`${plural(rows.length, 'recipient')} ${o.state}\n`);
      if (rows.length === 0) return;
      const table = rows.map((r) => [
        String(r.mid),
        String(r.rid),
        `<${r.from}>`,
        r.to,
        r.state,
        String(r.attempts),
        iso(r.nextAttempt ?? r.finishedAt) ?? '',
        r.lastReply ?? '',
      ]);
      out(formatTable(['MID', 'RID', 'From', 'To', 'State', 'Attempts', 'Next attempt / finished', 'Last reply'], table) + '\n');
    });

  q.command('show')
    .description('one message: sender, size, arrival, client, each recipient, and its headers')
    .argument('<mid>', 'message number (MID)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .option('--body', 'the whole message, not only its headers')
    .action((midText: string, o: { dataDir: string; json?: boolean; body?: boolean }) => {
      const mid = parseMid(midText);
      const store = QueueStore.open(o.dataDir);
      let v: MessageView | undefined;
      try {
        v = showMessage(store, mid, { body: o.body });
      } finally {
        store.close();
      }
      if (!v) {
        err(`postern: MID ${mid} is not in the queue (nor among the outcomes of the last 7 days)\n`);
        process.exitCode = 1;
        return;
      }
      if (!o.json) {
        out(showText(v));
        return;
      }
      const { message, ...rest } = v;
      const shown = {
        ...rest,
        receivedAt: iso(v.receivedAt),
        recipients: v.recipients.map((r) => ({ ...r, nextAttempt: iso(r.nextAttempt), finishedAt: iso(r.finishedAt) })),
        ...(message !== undefined ? { message: message.toString('utf8') } : {}),
      };
      outJson(shown);
    });

  q.command('delivernow')
    .description('make every queued recipient (of DOMAIN) due now and reset the destination counters')
    .argument('[domain]', 'only this recipient domain')
    .addOption(dataDirOption())
    .action(async (domainText: string | undefined, o: { dataDir: string }) => {
      const domain = domainText === undefined ? undefined : parseQueueDomain(domainText);
      const r = await withQueueAndLog(o.dataDir, (store, log) => service(store, log, o.dataDir).deliverNow(domain));
      const counters = domain === undefined ? 'All destination counters' : `The destination counters of ${domain}`;
      const pickup = 'are reset (a running gateway picks this up within a second).';
      if (r.recipients === 0) {
        out(`Nothing is queued${domain === undefined ? '' : ` for ${domain}`}. ${counters} ${pickup}\n`);
        return;
      }
      out(`${recipientsText(r.recipients, r.messages)}${domain === undefined ? '' : ` for ${domain}`} made due now. ${counters} ${pickup}\n`);
    });

  q.command('bounce')
    .description('final failure now (5.0.0 bounced by the administrator) with a DSN to the sender')
    .argument('[mid]', 'message number (MID)')
    .addOption(dataDirOption())
    .option('--domain <domain>', 'every queued recipient of this domain')
    .option('--all', 'every queued recipient')
    .option('--hostname <name>', 'the Reporting-MTA of the DSN (default: the name the gateway last started with)')
    .action(async (mid: string | undefined, o: { dataDir: string; domain?: string; all?: boolean; hostname?: string }) => {
      const sel = selection(mid, o);
      const snapshot = withStore(o.dataDir, (s) => s.snapshot());
      const r = await withQueueAndLog(o.dataDir, (store, log) =>
        service(store, log, o.dataDir).bounce(snapshot, sel, { hostname: o.hostname ?? store.fact('hostname') ?? osHostname() }),
      );
      if (r.recipients === 0) {
        out('The queue is empty: nothing bounced.\n');
        return;
      }
      const dsns = r.messages.reduce((n, m) => n + m.dsns.length, 0);
      printActed(r, 'bounced', ` (5.0.0 bounced by the administrator), ${dsns} DSN${dsns === 1 ? '' : 's'} queued`);
    });

  q.command('delete')
    .description('remove recipients from the queue without a DSN')
    .argument('[mid]', 'message number (MID)')
    .addOption(dataDirOption())
    .option('--domain <domain>', 'every queued recipient of this domain')
    .option('--all', 'every queued recipient')
    .action(async (mid: string | undefined, o: { dataDir: string; domain?: string; all?: boolean }) => {
      const sel = selection(mid, o);
      const r = await withQueueAndLog(o.dataDir, (store, log) => service(store, log, o.dataDir).delete(sel));
      if (r.recipients === 0) {
        out('The queue is empty: nothing deleted.\n');
        return;
      }
      printActed(r, 'deleted', ' (no DSN)');
    });
}

/** `queue list --cluster`: what each node last showed the cluster of its pending recipients. */
async function listCluster(dataDir: string, state: ListedState | 'pending', domain: string | undefined, json: boolean): Promise<void> {
  if (state !== 'pending' && state !== 'queued' && state !== 'deferred') throw new ValidationError('--state with --cluster', state, 'pending, queued, deferred (nodes share only what waits)');
  await withClusterRedis(dataDir, async (redis) => {
    const names = Object.keys(await redis.hgetall(NODES_KEY)).sort();
    const shown: (ListedRecipient & { node: string })[] = [];
    const notes: string[] = [];
    for (const node of names) {
      const raw = await redis.get(queueKey(node));
      if (raw === null) {
        notes.push(`node ${node}: no recent queue report (not running, or Redis was away)`);
        continue;
      }
      const q = JSON.parse(raw) as { at: number; total: number; rows: ListedRecipient[] };
      if (q.total > q.rows.length) notes.push(`node ${node}: ${q.total} pending, the first ${q.rows.length} shown`);
      for (const r of q.rows) if ((state === 'pending' || r.state === state) && (domain === undefined || r.domain === domain)) shown.push({ ...r, node });
    }
    if (json) return outJson({ recipients: shown.map((r) => ({ ...r, nextAttempt: iso(r.nextAttempt), finishedAt: iso(r.finishedAt) })), notes });
    out(`${plural(shown.length, 'recipient')} ${state} on ${plural(names.length, 'node')}\n`);
    for (const n of notes) out(`(${n})\n`);
    if (shown.length === 0) return;
    out(formatTable(['Node', 'MID', 'RID', 'From', 'To', 'State', 'Attempts', 'Next attempt', 'Last reply'], shown.map((r) => [r.node, String(r.mid), String(r.rid), `<${r.from}>`, r.to, r.state, String(r.attempts), iso(r.nextAttempt) ?? '', r.lastReply ?? ''])) + '\n');
  });
}
