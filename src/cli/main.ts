/**
 * The `postern` command: `start` runs the gateway; `destconfig`, `smtproutes`, `certconfig` and
 * `queue` are thin shells over the same store and service functions the gateway uses, one
 * module each.
 */
import { Command } from 'commander';
import { ValidationError } from '../controls/validate.js';
import { addBounceconfigCommand } from './bounceconfig.js';
import { addCertconfigCommand } from './certconfig.js';
import { addDestconfigCommand } from './destconfig.js';
import { addQueueCommand } from './queue.js';
import { addSmtproutesCommand } from './smtproutes.js';
import { addStartCommand } from './start.js';
import { addTlsverifyCommand } from './tlsverify.js';
import { addVgconfigCommand } from './vgconfig.js';
import { err } from './common.js';

export function buildProgram(): Command {
  const program = new Command('postern').description('Postern outbound mail gateway').showHelpAfterError().enablePositionalOptions();
  program.configureOutput({ writeErr: (s) => err(s) });
  addStartCommand(program);
  addDestconfigCommand(program);
  addSmtproutesCommand(program);
  addCertconfigCommand(program);
  addQueueCommand(program);
  addTlsverifyCommand(program);
  addBounceconfigCommand(program);
  addVgconfigCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof ValidationError) {
      err(`postern: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
