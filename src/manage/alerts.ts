/**
 * Alert recipients and the alert settings as a service (see manage/destinations.ts for the
 * shape): checked here, stored by config/alerts.ts, each change audited.
 */
import { AlertStore, parseAlertAddress, parseClasses, parseSeverities, type AlertRecipient } from '../config/alerts.js';
import type { ConfigStore, GlobalSettings } from '../config/store.js';
import { parseIntegerIn } from '../controls/validate.js';
import type { Recorder } from './audit.js';
import { changeGlobals, settingsDiff } from './destinations.js';

const alertSettings = (g: GlobalSettings) => ({ alertFrom: g.alertFrom, alertIntervalSeconds: g.alertIntervalSeconds, alertQueueRecipients: g.alertQueueRecipients, alertWaitMinutes: g.alertWaitMinutes });

export interface AlertInput {
  classes?: string;
  severities?: string;
}

export class AlertService {
  private readonly alerts: AlertStore;

  constructor(
    private readonly config: ConfigStore,
    private readonly record: Recorder,
  ) {
    this.alerts = new AlertStore(config);
  }

  list(): AlertRecipient[] {
    return this.alerts.list();
  }

  add(address: string, input: AlertInput): AlertRecipient {
    const r: AlertRecipient = { address: parseAlertAddress(address), classes: parseClasses(input.classes ?? 'all'), severities: parseSeverities(input.severities ?? 'all') };
    this.alerts.put(r, 'new');
    this.record('alert.new', r.address, { classes: r.classes, severities: r.severities });
    return r;
  }

  edit(address: string, input: AlertInput): AlertRecipient {
    const a = parseAlertAddress(address);
    const before = this.alerts.get(a);
    const r: AlertRecipient = {
      address: a,
      classes: input.classes === undefined ? (before?.classes ?? []) : parseClasses(input.classes),
      severities: input.severities === undefined ? (before?.severities ?? []) : parseSeverities(input.severities),
    };
    this.alerts.put(r, 'edit');
    this.record('alert.edit', a, settingsDiff(before, r));
    return r;
  }

  delete(address: string): void {
    const a = parseAlertAddress(address);
    this.alerts.delete(a);
    this.record('alert.delete', a);
  }

  /** SETUP: the sender (`default`: postern@ the host name) and the minimum interval between repeats (60 s to a week). */
  setup(input: { from?: string; interval?: string | number; queueRecipients?: string | number; waitMinutes?: string | number }): GlobalSettings {
    const changes: Partial<GlobalSettings> = {};
    const int = (v: string | number) => (typeof v === 'string' ? v.trim() : v);
    if (input.queueRecipients !== undefined) changes.alertQueueRecipients = parseIntegerIn('queue alert threshold (recipients)', int(input.queueRecipients), 1, 100_000_000);
    if (input.waitMinutes !== undefined) changes.alertWaitMinutes = parseIntegerIn('delivery alert threshold (minutes)', int(input.waitMinutes), 1, 43_200);
    if (input.from !== undefined) changes.alertFrom = input.from.trim().toLowerCase() === 'default' ? null : parseAlertAddress(input.from);
    if (input.interval !== undefined) changes.alertIntervalSeconds = parseIntegerIn('alert interval seconds', typeof input.interval === 'string' ? input.interval.trim() : input.interval, 60, 604_800);
    return changeGlobals(this.config, this.record, { action: 'alert.setup', target: 'alert settings', view: alertSettings }, changes);
  }
}
