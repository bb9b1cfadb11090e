/**
 * `postern apitoken`: bearer tokens for the JSON API (create, list, revoke), over
 * manage/tokens.ts. `create` prints the token once; only its hash is kept.
 */
import { Command } from 'commander';
import { cliBy } from '../manage/audit.js';
import { TokenStore } from '../manage/tokens.js';
import { parseRole, ROLES } from '../manage/users.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

export function addApitokenCommand(program: Command): void {
  const t = program.command('apitoken').description('bearer tokens for the JSON API: create, list, revoke');
  t.command('create')
    .description('create a token; it is printed once and stored only as a hash')
    .argument('<name>')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .addOption(dataDirOption())
    .action((name: string, o: { role: string; dataDir: string }) => {
      const role = parseRole(o.role);
      const r = withStore(o.dataDir, (s) => new TokenStore(s, o.dataDir).create(name, role, cliBy()));
      out(`Created token ${r.info.name} (${r.info.role}). It is shown only now; keep it safe:\n`);
      process.stdout.write(`${r.token}\n`);
    });
  t.command('list')
    .description('show the tokens (never the tokens themselves)')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { json?: boolean; dataDir: string }) => {
      const list = withStore(o.dataDir, (s) => new TokenStore(s, o.dataDir).list());
      if (o.json) return outJson(list);
      if (list.length === 0) return out('No API tokens.\n');
      out(formatTable(['Name', 'Role', 'Created', 'Last used'], list.map((x) => [x.name, x.role, x.created, x.lastUsed ?? 'never'])) + '\n');
    });
  t.command('revoke')
    .description('revoke a token: requests with it are refused from then on')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new TokenStore(s, o.dataDir).revoke(name, cliBy()));
      out(`Revoked ${name}.\n`);
    });
}
