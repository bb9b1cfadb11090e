/**
 * `postern certconfig`: certificates and the authorities trusted for verification.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../controls/validate.js';
import { dataDirOption, withStore } from './common.js';
import { formatTable } from './format.js';

export function addCertconfigCommand(program: Command): void {
  const cert = program.command('certconfig').description('certificates and trusted authorities');
  const auth = cert.command('authority').description('custom certificate authorities trusted for outbound verification');
  auth
    .command('add')
    .argument('<file>', 'PEM file with one or more CA certificates')
    .addOption(dataDirOption())
    .action((file: string, o: { dataDir: string }) => {
      const added = withStore(o.dataDir, (s) => s.addAuthorities(readFileSync(file, 'utf8')));
      process.stdout.write(added.length ? added.map((a) => `Added ${a.id}: ${a.subject} (SHA-256 ${a.fingerprint.slice(0, 16)}…)\n`).join('') : 'Already trusted; nothing added.\n');
    });
  auth
    .command('remove')
    .argument('<id>', 'authority id or SHA-256 fingerprint prefix')
    .addOption(dataDirOption())
    .action((id: string, o: { dataDir: string }) => {
      const a = withStore(o.dataDir, (s) => s.removeAuthority(id));
      process.stdout.write(`Removed ${a.id}: ${a.subject}\n`);
    });
  auth
    .command('list')
    .addOption(dataDirOption())
    .action((o: { dataDir: string }) => {
      const [list, g] = withStore(o.dataDir, (s) => [s.authorities(), s.globals()] as const);
      process.stdout.write(`System authorities: ${g.useSystemAuthorities ? 'trusted' : 'not trusted'}\n`);
      const rows = list.map((a) => [String(a.id), a.subject, a.notAfter, a.fingerprint.slice(0, 16)]);
      process.stdout.write(rows.length ? formatTable(['ID', 'Subject', 'Valid until', 'SHA-256'], rows) + '\n' : 'No custom authorities.\n');
    });
  auth
    .command('system')
    .argument('<on|off>')
    .addOption(dataDirOption())
    .description("trust the system's root authorities or not")
    .action((v: string, o: { dataDir: string }) => {
      if (v !== 'on' && v !== 'off') throw new ValidationError('system authorities', v, 'on, off');
      withStore(o.dataDir, (s) => s.setGlobals({ useSystemAuthorities: v === 'on' }));
      process.stdout.write(`System authorities: ${v === 'on' ? 'trusted' : 'not trusted'}\n`);
    });

}
