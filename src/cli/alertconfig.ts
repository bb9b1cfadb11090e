/**
 * `postern alertconfig`: who receives alerts (new, edit, delete, list) and how they are sent
 * (setup --from, --interval), over manage/alerts.ts.
 */
import { Command } from 'commander';
import { ALERT_CLASSES, AlertStore, SEVERITIES } from '../config/alerts.js';
import { cliBy, recorder } from '../manage/audit.js';
import { AlertService } from '../manage/alerts.js';
import { dataDirOption, out, outJson, withStore } from './common.js';
import { formatTable } from './format.js';

const service = (dataDir: string, fn: (s: AlertService) => unknown) => withStore(dataDir, (store) => fn(new AlertService(store, recorder(dataDir, cliBy()))));

export function addAlertconfigCommand(program: Command): void {
  const a = program.command('alertconfig').description('alert recipients and settings: new, edit, delete, list, setup');
  const lists = (c: Command) =>
    c.option('--classes <list>', `${ALERT_CLASSES.join(',')} or all (default all)`).option('--severities <list>', `${SEVERITIES.join(',')} or all (default all)`);
  lists(a.command('new').description('send alerts to an address').argument('<address>'))
    .addOption(dataDirOption())
    .action((address: string, o: { classes?: string; severities?: string; dataDir: string }) => {
      service(o.dataDir, (s) => s.add(address, o));
      out(`${address} receives alerts.\n`);
    });
  lists(a.command('edit').description("change an address's classes or severities").argument('<address>'))
    .addOption(dataDirOption())
    .action((address: string, o: { classes?: string; severities?: string; dataDir: string }) => {
      service(o.dataDir, (s) => s.edit(address, o));
      out(`Changed the alerts of ${address}.\n`);
    });
  a.command('delete')
    .description('stop sending alerts to an address')
    .argument('<address>')
    .addOption(dataDirOption())
    .action((address: string, o: { dataDir: string }) => {
      service(o.dataDir, (s) => s.delete(address));
      out(`${address} receives no more alerts.\n`);
    });
  a.command('list')
    .description('the alert recipients and settings')
    .option('--json', 'machine-readable output')
    .addOption(dataDirOption())
    .action((o: { json?: boolean; dataDir: string }) => {
      const [list, g] = withStore(o.dataDir, (store) => [new AlertStore(store).list(), store.globals()] as const);
      if (o.json) return outJson({ from: g.alertFrom, intervalSeconds: g.alertIntervalSeconds, requiredTlsAlert: g.requiredTlsAlert, queueRecipients: g.alertQueueRecipients, waitMinutes: g.alertWaitMinutes, recipients: list });
      out(`Alerts from ${g.alertFrom ?? 'postern@<host name>'}; the same alert for the same domain at most every ${g.alertIntervalSeconds} seconds.\n`);
      out(`Required TLS failure alerts (destconfig setup --required-tls-alert): ${g.requiredTlsAlert ? 'on' : 'off'}.\n`);
      out(`Delivery alerts after ${g.alertWaitMinutes} minutes of waiting; queue alerts above ${g.alertQueueRecipients} recipients.\n\n`);
      if (list.length === 0) return out('No alert recipients.\n');
      out(formatTable(['Address', 'Classes', 'Severities'], list.map((r) => [r.address, r.classes.join(','), r.severities.join(',')])) + '\n');
    });
  a.command('setup')
    .description('the sender of alert mail and the minimum interval between repeats')
    .option('--from <address>', 'sender address, or default (postern@ the host name)')
    .option('--interval <seconds>', 'minimum seconds between two alerts of one class for one domain (60-604800, default 3600)')
    .option('--queue-recipients <n>', 'class queue: alert when more recipients than this wait (default 10000)')
    .option('--wait-minutes <m>', "class delivery: alert when a domain's oldest tried message has waited longer (default 240)")
    .addOption(dataDirOption())
    .action((o: { from?: string; interval?: string; queueRecipients?: string; waitMinutes?: string; dataDir: string }) => {
      service(o.dataDir, (s) => s.setup(o));
      out('Saved the alert settings.\n');
    });
}
