/**
 * `postern queue`: what is waiting, and what happened to each recipient.
 */
import { Command, Option } from 'commander';
import { QueueStore, type ListedRecipient, type ListedState } from '../queue/store.js';
import { dataDirOption } from './common.js';
import { formatTable } from './format.js';

export function addQueueCommand(program: Command): void {
  const q = program.command('queue').description('the delivery queue');
  q.command('list')
    .addOption(dataDirOption())
    .option('--domain <domain>', 'only this destination domain')
    .addOption(
      new Option('--state <state>', 'pending (queued and deferred), queued, deferred, delivered, bounced, deleted')
        .choices(['pending', 'queued', 'deferred', 'delivered', 'bounced', 'deleted'])
        .default('pending'),
    )
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; domain?: string; state: ListedState | 'pending'; json?: boolean }) => {
      const store = QueueStore.open(o.dataDir);
      let rows: ListedRecipient[];
      try {
        rows = store.list({ domain: o.domain, state: o.state });
      } finally {
        store.close();
      }
      const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
      if (o.json) {
        const out = rows.map((r) => ({ ...r, nextAttempt: iso(r.nextAttempt), finishedAt: iso(r.finishedAt) }));
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${rows.length} recipients ${o.state}\n`);
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
      process.stdout.write(formatTable(['MID', 'RID', 'From', 'To', 'State', 'Attempts', 'Next attempt / finished', 'Last reply'], table) + '\n');
    });
}
