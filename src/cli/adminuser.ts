/**
 * `postern adminuser`: administrator accounts for the web page and the API (add, list, delete,
 * passwd, role), over the same service (manage/users.ts) the page will use.
 */
import { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { ConfigStore } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { cliBy } from '../manage/audit.js';
import { parseRole, ROLES, UserStore } from '../manage/users.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** One line typed on the terminal without echo. */
function askHidden(prompt: string): Promise<string> {
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  process.stdout.write(prompt);
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) =>
    rl.once('line', (line) => {
      rl.close();
      process.stdout.write('\n');
      resolve(line);
    }),
  );
}

async function newPassword(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) {
    const first = (await readStdin()).split(/\r?\n/)[0] ?? '';
    if (first === '') throw new ValidationError('password', '(empty)', 'one line on standard input (--password-stdin)');
    return first;
  }
  if (!process.stdin.isTTY) throw new ValidationError('password', '(none given)', 'a line on standard input with --password-stdin, or typed on a terminal');
  const a = await askHidden('New password: ');
  const b = await askHidden('Repeat the new password: ');
  if (a !== b) throw new ValidationError('password', '(hidden)', 'the same password typed twice');
  return a;
}

export function addAdminuserCommand(program: Command): void {
  const au = program.command('adminuser').description('administrator accounts for the web page and the API: add, list, delete, passwd');
  au.command('add')
    .description('add an account')
    .argument('<name>')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--password-stdin', 'read the password from the first line of standard input')
    .addOption(dataDirOption())
    .action(async (name: string, o: { role: string; passwordStdin?: boolean; dataDir: string }) => {
      const role = parseRole(o.role);
      const password = await newPassword(o.passwordStdin);
      const store = ConfigStore.open(o.dataDir);
      try {
        await new UserStore(store, o.dataDir).add(name, role, password, cliBy());
      } finally {
        store.close();
      }
      out(`Added ${name} (${role}).\n`);
    });
  au.command('passwd')
    .description("change an account's password")
    .argument('<name>')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .addOption(dataDirOption())
    .action(async (name: string, o: { passwordStdin?: boolean; dataDir: string }) => {
      const password = await newPassword(o.passwordStdin);
      const store = ConfigStore.open(o.dataDir);
      try {
        await new UserStore(store, o.dataDir).setPassword(name, password, cliBy());
      } finally {
        store.close();
      }
      out(`Changed the password of ${name}.\n`);
    });
  au.command('role')
    .description("change an account's role (the last administrator keeps theirs)")
    .argument('<name>')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .addOption(dataDirOption())
    .action((name: string, o: { role: string; dataDir: string }) => {
      const role = parseRole(o.role);
      const u = withStore(o.dataDir, (s) => new UserStore(s, o.dataDir).setRole(name, role, cliBy()));
      out(`${u.name} is now ${u.role}.\n`);
    });
  au.command('delete')
    .description('delete an account (never the last administrator)')
    .argument('<name>')
    .addOption(dataDirOption())
    .action((name: string, o: { dataDir: string }) => {
      withStore(o.dataDir, (s) => new UserStore(s, o.dataDir).delete(name, cliBy()));
      out(`Deleted ${name}.\n`);
    });
  au.command('list')
    .description('show the accounts and their roles')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { json?: boolean; dataDir: string }) => {
      const users = withStore(o.dataDir, (s) => new UserStore(s, o.dataDir).list());
      if (o.json) {
        outJson(users);
        return;
      }
      if (users.length === 0) {
        out('No administrator accounts.\n');
        return;
      }
      out(
        formatTable(
          ['Name', 'Role', 'Password changed', 'Must change password'],
          users.map((u) => [u.name, u.role, u.passwordChanged, u.mustChange ? 'yes' : 'no']),
        ) + '\n',
      );
    });
}
