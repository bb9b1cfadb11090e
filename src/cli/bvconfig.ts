/**
 * `postern bvconfig`: bounce verification (SPEC §8) — tagging keys (`key add|list|retire`) and
 * what invalid bounces get (`setup`), over manage/bounce-verification.ts. A key's text is shown
 * once, when it is added, and after that only with `key list --show`.
 */
import { Command } from 'commander';
import { TAG_LIFETIME_DAYS } from '../bounce/batv.js';
import { cliBy, recorder } from '../manage/audit.js';
import { BvService } from '../manage/bounce-verification.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable, isoSeconds } from './format.js';

const service = <T>(dataDir: string, fn: (s: BvService) => T): T => withStore(dataDir, (store) => fn(new BvService(store, dataDir, recorder(dataDir, cliBy()))));

export function addBvconfigCommand(program: Command): void {
  const bv = program.command('bvconfig').description('bounce verification: tagging keys and what invalid bounces get');
  const key = bv.command('key').description('tagging keys: add, list, retire');
  key
    .command('add')
    .description('add a tagging key (random unless --key is given); the newest active key tags')
    .option('--key <text>', 'the key text (8 to 256 printable characters)')
    .addOption(dataDirOption())
    .action((o: { key?: string; dataDir: string }) => {
      const k = service(o.dataDir, (s) => s.addKey(o.key));
      out(`Added key ${k.number}; it tags from now on.\n`);
      if (o.key === undefined) out(`Key ${k.number}: ${k.text}\n(shown this once; bvconfig key list --show shows it again)\n`);
    });
  key
    .command('list')
    .description('the keys: number, created, retired')
    .option('--show', 'also print each key text')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { show?: boolean; json?: boolean; dataDir: string }) => {
      const rows = service(o.dataDir, (s) => s.listKeys().map((k) => ({ ...k, ...(o.show ? { text: s.keyText(k.number) } : {}) })));
      if (o.json) return outJson(rows.map((k) => ({ number: k.number, created: isoSeconds(k.created), retired: k.retired === null ? null : isoSeconds(k.retired), ...('text' in k ? { text: k.text } : {}) })));
      if (rows.length === 0) return out('No tagging keys: nothing is tagged. Add one with postern bvconfig key add.\n');
      const header = ['Key', 'Created', 'Retired', ...(o.show ? ['Text'] : [])];
      out(formatTable(header, rows.map((k) => [String(k.number), isoSeconds(k.created), isoSeconds(k.retired), ...('text' in k ? [String(k.text)] : [])])) + '\n');
    });
  key
    .command('retire')
    .description(`stop tagging with a key; its tags still verify for ${TAG_LIFETIME_DAYS} days`)
    .argument('<number>')
    .addOption(dataDirOption())
    .action((number: string, o: { dataDir: string }) => {
      const k = service(o.dataDir, (s) => s.retireKey(number));
      out(`Retired key ${k.number}: bounces to its tags verify until ${isoSeconds(k.retired! + TAG_LIFETIME_DAYS * 86_400_000)}.\n`);
    });
  bv.command('setup')
    .description('what an invalid bounce gets; whether untagged bounces are valid')
    .option('--invalid-action <action>', 'reject (5xx at RCPT) or add-header (accept with --header)')
    .option('--header <header>', 'the header added to an accepted invalid bounce, "Name: value"')
    .option('--untagged-valid <yes|no>', 'whether a bounce to an untagged address is valid (default no)')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { invalidAction?: string; header?: string; untaggedValid?: string; json?: boolean; dataDir: string }) => {
      const s = service(o.dataDir, (svc) => (o.invalidAction === undefined && o.header === undefined && o.untaggedValid === undefined ? svc.settings() : svc.setup(o)));
      if (o.json) return outJson(s);
      out(`Invalid bounces: ${s.invalidAction === 'reject' ? 'rejected (550 5.7.1 at RCPT)' : `accepted with the header "${s.header}"`}\n`);
      out(`Header for accepted invalid bounces: ${s.header}\n`);
      out(`Untagged bounces: ${s.untaggedValid ? 'valid' : 'invalid'}\n`);
    });
}
