/**
 * `postern bounceconfig`: bounce profiles (SPEC §7). Batch forms `new NAME [flags]`,
 * `edit NAME [flags]`, `delete NAME`, `list [--json]`, `detail NAME [--json]`; without an
 * operation, the interactive dialogue (src/cli/dialogue/bounceconfig.ts). A thin shell over
 * ProfileStore, so scripts, the dialogue and the web page cannot disagree.
 *
 * Exit status: 0 done; 2 a rejected value (the message names the field, its flag, the value and
 * the allowed range; nothing changed); 1 any other failure (no such profile, the name exists,
 * deleting Default or a profile still used by destination entries — those entries are named).
 */
import { Command } from 'commander';
import { PROFILE_FIELD_LABELS, type BounceProfile, type ProfileInput } from '../bounce/profile.js';
import { ConfigError, ConfigStore } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { cliBy, recorder } from '../manage/audit.js';
import { ProfileService } from '../manage/profiles.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { runBounceconfigDialogue } from './dialogue/bounceconfig.js';
import { StreamIo } from './dialogue/io.js';
import { formatTable } from './format.js';
import { PROFILE_LIST_HEADER, profileDetailLines, profileJson, profileListRows } from './profile-format.js';

interface ProfileFlags {
  maxRetries?: string;
  maxQueueTime?: string;
  initialRetry?: string;
  maxRetry?: string;
  hardBounces?: string;
  dsnFormat?: string;
  maxBounceCopy?: string;
  delayWarnings?: string;
  delayWarningInterval?: string;
  delayWarningMax?: string;
  alternateAddress?: string;
}

/** Each flag, the profile field it sets, and its help. */
const FLAGS: { flag: string; key: keyof ProfileFlags; field: Exclude<keyof BounceProfile, 'name'>; help: string }[] = [
  { flag: '--max-retries <n>', key: 'maxRetries', field: 'maxRetries', help: 'delivery attempts before a soft failure bounces, 0-10000 (100)' },
  { flag: '--max-queue-time <seconds>', key: 'maxQueueTime', field: 'maxQueueSeconds', help: 'longest time in the queue, 0-3000000 (259200)' },
  { flag: '--initial-retry <seconds>', key: 'initialRetry', field: 'initialRetrySeconds', help: 'first retry wait, 60-86400 (60)' },
  { flag: '--max-retry <seconds>', key: 'maxRetry', field: 'maxRetrySeconds', help: 'longest retry wait, initial-86400 (3600)' },
  { flag: '--hard-bounces <on|off>', key: 'hardBounces', field: 'sendHardBounces', help: 'send a DSN for each hard bounce (on)' },
  { flag: '--dsn-format <format>', key: 'dsnFormat', field: 'dsnFormat', help: 'rfc3464 (the only format)' },
  { flag: '--max-bounce-copy <bytes>', key: 'maxBounceCopy', field: 'maxBounceCopy', help: 'largest original returned whole, 0-10485760 (10240)' },
  { flag: '--delay-warnings <on|off>', key: 'delayWarnings', field: 'delayWarnings', help: 'send delay warnings (off)' },
  { flag: '--delay-warning-interval <seconds>', key: 'delayWarningInterval', field: 'delayWarningInterval', help: 'minimum time between delay warnings, 60-3000000 (14400)' },
  { flag: '--delay-warning-max <n>', key: 'delayWarningMax', field: 'delayWarningMax', help: 'delay warnings per recipient, 1-100 (1)' },
  { flag: '--alternate-address <address|none>', key: 'alternateAddress', field: 'alternateAddress', help: 'send bounces and delay warnings here instead of the sender (none)' },
];

function profileOptions(cmd: Command): Command {
  for (const f of FLAGS) cmd.option(f.flag, f.help);
  return cmd;
}

function inputOf(o: ProfileFlags): ProfileInput {
  const input: ProfileInput = {};
  for (const f of FLAGS) if (o[f.key] !== undefined) input[f.field] = o[f.key];
  return input;
}

/** Runs a store change; a rejected value names the flag beside the field. */
function withFlags<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    const f = FLAGS.find((x) => PROFILE_FIELD_LABELS[x.field] === e.field);
    throw f ? new ValidationError(`${e.field} (${f.flag.split(' ')[0]})`, e.value, e.allowed) : e;
  }
}

/** Profiles through their service (validation and audit), acting for the user who runs the command. */
function withProfiles<T>(dataDir: string, fn: (p: ProfileService) => T): T {
  return withStore(dataDir, (s) => fn(new ProfileService(s, recorder(dataDir, cliBy()))));
}

export function addBounceconfigCommand(program: Command): void {
  const bc = program
    .command('bounceconfig')
    .description('bounce profiles: retries, time in queue, bounces, delay warnings; without an operation, the interactive dialogue')
    .addOption(dataDirOption())
    .enablePositionalOptions()
    .action(async (o: { dataDir: string }) => runDialogue(o.dataDir));

  profileOptions(bc.command('new').argument('<name>').addOption(dataDirOption()).description('create a profile (unset fields take the Default values of SPEC §7)')).action(
    (name: string, o: ProfileFlags & { dataDir: string }) => {
      const p = withProfiles(o.dataDir, (s) => withFlags(() => s.create(name, inputOf(o))));
      out(`Created bounce profile ${p.name}.\n`);
    },
  );
  profileOptions(bc.command('edit').argument('<name>').addOption(dataDirOption()).description('change fields of a profile (Default included)')).action(
    (name: string, o: ProfileFlags & { dataDir: string }) => {
      const p = withProfiles(o.dataDir, (s) => withFlags(() => s.edit(name, inputOf(o))));
      out(`Changed bounce profile ${p.name}.\n`);
    },
  );
  bc.command('delete')
    .argument('<name>')
    .addOption(dataDirOption())
    .description('remove a profile (not Default, not while an entry uses it)')
    .action((name: string, o: { dataDir: string }) => {
      const n = withProfiles(o.dataDir, (s) => s.delete(name));
      out(`Deleted bounce profile ${n}.\n`);
    });
  bc.command('list')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .description('summary of all profiles')
    .action((o: { dataDir: string; json?: boolean }) => {
      const { list, usage } = withProfiles(o.dataDir, (s) => ({ list: s.list(), usage: s.usage() }));
      const users = (n: string) => usage.get(n.toLowerCase()) ?? [];
      if (o.json) {
        outJson(list.map((p) => profileJson(p, users(p.name))));
        return;
      }
      out(`There ${list.length === 1 ? 'is' : 'are'} currently ${list.length} bounce ${list.length === 1 ? 'profile' : 'profiles'} configured.\n\n`);
      out(formatTable(PROFILE_LIST_HEADER, profileListRows(list, users)) + '\n');
    });
  bc.command('detail')
    .argument('<name>')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .description('every field of one profile, and the entries that use it')
    .action((name: string, o: { dataDir: string; json?: boolean }) => {
      const { p, users } = withProfiles(o.dataDir, (s) => {
        const found = s.get(name);
        if (!found) throw new ConfigError(`no bounce profile named ${name}`);
        return { p: found, users: s.usersOf(found.name) };
      });
      if (o.json) outJson(profileJson(p, users));
      else out(profileDetailLines(p, users).join('\n') + '\n');
    });
}

/** The interactive dialogue on this process's terminal or piped input. */
async function runDialogue(dataDir: string): Promise<void> {
  const store = ConfigStore.open(dataDir);
  const io = new StreamIo(process.stdin, process.stdout);
  try {
    await runBounceconfigDialogue(io, { profiles: new ProfileService(store, recorder(dataDir, cliBy())) });
  } finally {
    io.close();
    store.close();
  }
}
