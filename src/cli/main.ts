/**
 * The `postern` command: `start` runs the gateway; `destconfig`, `smtproutes`, `certconfig` and
 * `queue` are thin shells over the same store and service functions the gateway uses, one
 * module each.
 */
import { Command } from 'commander';
import { DataDirError, prepareDataDir } from '../config/datadir.js';
import { ValidationError } from '../controls/validate.js';
import { VERSION } from '../version.js';
import { addAdminuserCommand } from './adminuser.js';
import { addApitokenCommand } from './apitoken.js';
import { addReportCommand } from './report.js';
import { addBvconfigCommand } from './bvconfig.js';
import { addLocaldomainsCommand } from './localdomains.js';
import { addMtastsCommand } from './mtasts.js';
import { addAlertconfigCommand } from './alertconfig.js';
import { addTlsrptconfigCommand } from './tlsrptconfig.js';
import { addBounceconfigCommand } from './bounceconfig.js';
import { addCertconfigCommand } from './certconfig.js';
import { addDestconfigCommand } from './destconfig.js';
import { addQueueCommand } from './queue.js';
import { addSmtproutesCommand } from './smtproutes.js';
import { addStartCommand } from './start.js';
import { addTlsverifyCommand } from './tlsverify.js';
import { addVgconfigCommand } from './vgconfig.js';
import { err } from './common.js';
import { addClusterCommand } from './cluster.js';
import { ClusterCliSession } from '../cluster/cli-session.js';
import { readMembership } from '../cluster/membership.js';

/**
 * Commands that only read: they never create a data directory, so a mistyped --data-dir is an
 * error ("does not exist") rather than an empty queue or a default table. The queue commands
 * act on mail that must already be there, so they count as readers here too.
 */
const READERS = new Set([
  'queue list', 'queue show', 'queue delivernow', 'queue bounce', 'queue delete',
  'destconfig list', 'destconfig detail', 'destconfig export', 'destconfig explain',
  'smtproutes list', 'certconfig list', 'certconfig show', 'certconfig export', 'authority list',
  'bounceconfig list', 'bounceconfig detail', 'vgconfig list', 'tlsverify', 'adminuser list', 'apitoken list', 'report tls', 'report tlsrpt', 'alertconfig list', 'tlsrptconfig show', 'mtasts show',
]);

function commandPath(c: Command): string {
  return c.parent && c.parent.name() !== 'postern' ? `${c.parent.name()} ${c.name()}` : c.name();
}

export function buildProgram(): Command {
  const program = new Command('postern').description('Postern outbound mail gateway').showHelpAfterError().enablePositionalOptions();
  program.version(VERSION, '-V, --version', 'print the version');
  program.configureOutput({ writeErr: (s) => err(s) });
  let session: ClusterCliSession | null = null;
  program.hook('preAction', async (_root, action) => {
    const dataDir = (action.opts() as { dataDir?: unknown }).dataDir;
    // `start` prepares its directory itself, after checking that it can listen.
    if (typeof dataDir !== 'string' || action.name() === 'start') return;
    prepareDataDir(dataDir, { create: !READERS.has(commandPath(action)) });
    // A cluster node's directory: the command works on the cluster's configuration.
    const membership = commandPath(action) === 'cluster status' ? null : readMembership(dataDir);
    if (membership) {
      session = await ClusterCliSession.begin(dataDir, membership);
      if (session.offlineReason) err(`postern: ${session.where} cannot be reached (${session.offlineReason}); this is node ${membership.node}'s last copy of the configuration (version ${session.version})\n`);
    }
  });
  program.hook('postAction', async () => {
    const s = session;
    session = null;
    if (s) await s.finish();
  });
  addStartCommand(program);
  addDestconfigCommand(program);
  addSmtproutesCommand(program);
  addCertconfigCommand(program);
  addQueueCommand(program);
  addTlsverifyCommand(program);
  addBounceconfigCommand(program);
  addVgconfigCommand(program);
  addAdminuserCommand(program);
  addApitokenCommand(program);
  addReportCommand(program);
  addAlertconfigCommand(program);
  addTlsrptconfigCommand(program);
  addBvconfigCommand(program);
  addLocaldomainsCommand(program);
  addMtastsCommand(program);
  addClusterCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `postern queue list | head -1`: the reader went away; stop quietly, as Unix tools do.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof ValidationError || e instanceof DataDirError) {
      err(`postern: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
