/**
 * The interactive `destconfig` dialogue of the appliance (seed document): the operation menu,
 * then each operation's questions in the appliance's words and order. Every change goes through
 * the same ConfigStore calls as the batch commands, and only when an operation's questions are
 * all answered: an operation abandoned at end of input changes nothing.
 */
import { parseDestinationName, displayName } from '../../controls/names.js';
import { parseImport, exportFile } from '../../controls/ini.js';
import {
  DANE_MODE_LABELS,
  DANE_MODES,
  DEFAULT_ENTRY_NAME,
  IP_PREFERENCES,
  IP_PREFERENCE_LABELS,
  TLS_MODES,
  TLS_MODE_LABELS,
  type Entry,
  type PartialSettings,
  type EntrySettingName,
  type Settings,
} from '../../controls/types.js';
import { RANGES } from '../../controls/validate.js';
import { isRequired } from '../../tls/policy.js';
import type { ConfigStore } from '../../config/store.js';
import { detailLines, entriesConfigured, formatTable, LIST_HEADER, listRows, SETTING_NOTES, plural, REQUIRED_TLS_ALERT_NOTE } from '../format.js';
import { askChoice, askInteger, askText, askYesNo, runMenu, type DialogueIo } from './io.js';
import type { DestinationService } from '../../manage/destinations.js';

export interface DestconfigServices {
  /** For reading; every change goes through `destinations` (validation and audit in one place). */
  store: ConfigStore;
  destinations: DestinationService;
  /** True while only the demo certificate is configured (SPEC §2's warning). */
  onlyDemo(): boolean;
  bounceProfiles(): string[];
  /** Certificates that can be the outbound client certificate. */
  certificateNames(): string[];
  clientCertificate(): string | null;
  setClientCertificate(name: string | null): void;
  readFile(path: string): string;
  /** Writes a new file; with `overwrite`, replaces one that exists. */
  writeFile(path: string, text: string, overwrite?: boolean): void;
  fileExists(path: string): boolean;
}

export const OPERATIONS = [
  ['SETUP', 'Change global settings.'],
  ['NEW', 'Create a new entry.'],
  ['EDIT', 'Modify an entry.'],
  ['DELETE', 'Remove an entry.'],
  ['DEFAULT', 'Change the default.'],
  ['LIST', 'Display a summary list of all entries.'],
  ['DETAIL', 'Display details for one destination or all entries.'],
  ['CLEAR', 'Remove all entries.'],
  ['IMPORT', 'Import tables from a file.'],
  ['EXPORT', 'Export tables to a file.'],
] as const;
type Operation = (typeof OPERATIONS)[number][0];

const TLS_WARNING =
  "You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.";

export async function runDestconfigDialogue(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  await runMenu(
    io,
    OPERATIONS,
    () => {
      io.say('');
      io.say(entriesConfigured(svc.store.table().size + 1));
      io.say('');
    },
    (op) => run(op, io, svc),
  );
}

async function run(op: Operation, io: DialogueIo, svc: DestconfigServices): Promise<void> {
  switch (op) {
    case 'SETUP':
      return setup(io, svc);
    case 'NEW':
      return newEntry(io, svc);
    case 'EDIT':
      return editEntry(io, svc);
    case 'DELETE':
      return deleteEntry(io, svc);
    case 'DEFAULT':
      return editDefault(io, svc);
    case 'LIST':
      io.say('');
      io.say(formatTable(LIST_HEADER, listRows(svc.store.table())));
      return;
    case 'DETAIL':
      return detail(io, svc);
    case 'CLEAR':
      return clear(io, svc);
    case 'IMPORT':
      return importTable(io, svc);
    case 'EXPORT':
      return exportTable(io, svc);
  }
}

async function askDomain(io: DialogueIo, prompt: string, mustExist: boolean | null, svc: DestconfigServices): Promise<string> {
  const table = svc.store.table();
  const name = await askText(io, prompt, (a) => {
    let n: string;
    try {
      n = parseDestinationName(a);
    } catch (e) {
      return (e as Error).message;
    }
    if (mustExist === true && !table.get(n)) return `There is no entry for ${displayName(n)}.`;
    if (mustExist === false && table.get(n)) return `An entry for ${displayName(n)} already exists; use EDIT to change it.`;
    return null;
  });
  return parseDestinationName(name);
}

/**
 * The per-setting questions of NEW and EDIT. `current` holds the entry's settings (empty for
 * NEW); an answer of N to "Do you wish to …" puts the setting back to Default.
 */
async function askEntrySettings(io: DialogueIo, svc: DestconfigServices, domain: string, current: PartialSettings): Promise<{ settings: PartialSettings; reset: EntrySettingName[] }> {
  const d = svc.store.defaults();
  const settings: PartialSettings = {};
  const reset: EntrySettingName[] = [];
  const isNew = Object.keys(current).length === 0;
  const shown = displayName(domain);

  if (await askYesNo(io, `Do you wish to configure a concurrency limit for ${shown}?`, isNew ? true : current.concurrency !== undefined)) {
    settings.concurrency = await askInteger(io, `Enter the max concurrency limit for "${shown}".`, RANGES.concurrency.min, RANGES.concurrency.max, current.concurrency ?? d.concurrency);
  } else reset.push('concurrency');

  if (await askYesNo(io, 'Do you wish to apply a messages-per-connection limit to this domain?', current.messagesPerConnection !== undefined)) {
    settings.messagesPerConnection = await askInteger(
      io,
      `Enter the max number of messages per connection for "${shown}".`,
      RANGES.messagesPerConnection.min,
      RANGES.messagesPerConnection.max,
      current.messagesPerConnection ?? d.messagesPerConnection,
    );
  } else reset.push('messagesPerConnection');

  if (await askYesNo(io, 'Do you wish to apply a recipient limit to this domain?', current.recipientLimit !== undefined && current.recipientLimit !== null)) {
    const cur = current.recipientLimit ?? d.recipientLimit;
    const minutes = await askInteger(io, `Enter the number of minutes used to measure the recipient limit for "${shown}".`, RANGES.minutes.min, RANGES.minutes.max, cur?.minutes ?? 60);
    const recipients = await askInteger(io, `Enter the max number of recipients per ${minutes} minutes for "${shown}".`, RANGES.recipients.min, RANGES.recipients.max, cur?.recipients);
    settings.recipientLimit = { recipients, minutes };
  } else reset.push('recipientLimit');

  if (settings.concurrency !== undefined || settings.recipientLimit !== undefined) {
    const per = await askChoice(io, `Select how you want to apply the limits for ${shown}:`, [
      `One limit applies to the entire domain for ${shown}`,
      'Separate limit for each mail exchanger IP address',
    ], (current.limitPer ?? d.limitPer) === 'mx-ip' ? 1 : 0);
    settings.limitPer = per === 1 ? 'mx-ip' : 'domain';
    const enf = await askChoice(io, 'Select how the limits will be enforced:', ['System Wide', 'Per Virtual Gateway(tm)'], (current.enforce ?? d.enforce) === 'virtual-gateway' ? 1 : 0);
    settings.enforce = enf === 1 ? 'virtual-gateway' : 'system';
  } else {
    reset.push('limitPer', 'enforce');
  }

  if (await askYesNo(io, 'Do you wish to apply a specific TLS setting for this domain?', current.tls !== undefined)) {
    const i = await askChoice(io, 'Do you want to use TLS support?', TLS_MODES.map((m) => TLS_MODE_LABELS[m]), TLS_MODES.indexOf(current.tls ?? 'no'));
    settings.tls = TLS_MODES[i]!;
    if (settings.tls !== 'no') tlsWarning(io, svc);
  } else reset.push('tls');

  // Beyond the appliance: asked only where it matters (a Required setting) or is already set.
  if (isRequired(settings.tls ?? d.tls) || current.tlsAlert !== undefined) {
    const global = svc.store.globals().requiredTlsAlert;
    if (await askYesNo(io, `Do you wish to apply a specific required-TLS failure alert setting for this domain (the global setting is ${global ? 'on' : 'off'})?`, current.tlsAlert !== undefined)) {
      settings.tlsAlert = await askYesNo(io, 'Send an alert when a required TLS connection to this domain fails?', current.tlsAlert ?? global);
      if (settings.tlsAlert) io.say(REQUIRED_TLS_ALERT_NOTE);
    } else reset.push('tlsAlert');
  }

  // Beyond the appliance: the recipient-side TLS policies (SPEC §12), which can only raise the TLS setting.
  if (await askYesNo(io, 'Do you wish to apply a specific DANE setting for this domain?', current.dane !== undefined)) {
    settings.dane = await askDane(io, current.dane ?? d.dane);
  } else reset.push('dane');

  if (await askYesNo(io, 'Do you wish to apply a specific MTA-STS setting for this domain?', current.mtaSts !== undefined)) {
    settings.mtaSts = await askMtaSts(io, current.mtaSts ?? d.mtaSts);
  } else reset.push('mtaSts');

  if (await askYesNo(io, 'Do you wish to apply a specific bounce verification address tagging setting for this domain?', current.bounceVerification !== undefined)) {
    settings.bounceVerification = await askYesNo(io, 'Perform bounce verification address tagging?', current.bounceVerification ?? d.bounceVerification);
    if (settings.bounceVerification) io.say(SETTING_NOTES.bounceVerification);
  } else reset.push('bounceVerification');

  if (await askYesNo(io, 'Do you wish to apply a specific bounce profile to this domain?', current.bounceProfile !== undefined)) {
    settings.bounceProfile = await askProfile(io, svc, current.bounceProfile ?? d.bounceProfile);
  } else reset.push('bounceProfile');

  if (await askYesNo(io, 'Do you wish to apply a specific IP sort preference to this domain?', current.ipPreference !== undefined)) {
    settings.ipPreference = await askIpPreference(io, current.ipPreference ?? d.ipPreference);
  } else reset.push('ipPreference');

  return { settings, reset };
}

function tlsWarning(io: DialogueIo, svc: DestconfigServices): void {
  if (!svc.onlyDemo()) return;
  io.say('');
  io.say(TLS_WARNING);
  io.say('Enabling TLS uses the demo certificate, which is not secure.');
  io.say('');
}

async function askProfile(io: DialogueIo, svc: DestconfigServices, current: string): Promise<string> {
  const names = svc.bounceProfiles();
  if (!names.includes(current)) names.push(current);
  return names[await askChoice(io, 'Select a bounce profile:', names, names.indexOf(current))]!;
}

/** DANE (RFC 7672): off, opportunistic (TLSA records used where found) or required. */
async function askDane(io: DialogueIo, current: Settings['dane']): Promise<Settings['dane']> {
  const i = await askChoice(io, 'Select the DANE setting (TLSA records published under DNSSEC):', DANE_MODES.map((m) => DANE_MODE_LABELS[m]), DANE_MODES.indexOf(current));
  return DANE_MODES[i]!;
}

/** MTA-STS (RFC 8461): whether a recipient domain's published policy is applied. */
function askMtaSts(io: DialogueIo, current: boolean): Promise<boolean> {
  return askYesNo(io, 'Apply the MTA-STS policy the recipient domain publishes?', current);
}

async function askIpPreference(io: DialogueIo, current: Settings['ipPreference']): Promise<Settings['ipPreference']> {
  const i = await askChoice(io, 'Select the IP sort preference:', IP_PREFERENCES.map((p) => IP_PREFERENCE_LABELS[p]), IP_PREFERENCES.indexOf(current));
  return IP_PREFERENCES[i]!;
}

async function newEntry(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  io.say('');
  const domain = await askDomain(io, 'Enter the domain you wish to configure.', false, svc);
  io.say('');
  const { settings } = await askEntrySettings(io, svc, domain, {});
  svc.destinations.newEntry(domain, settings);
}

async function editEntry(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  if (svc.store.table().size === 0) {
    io.say('There are no entries to edit. Use NEW to create one, or DEFAULT to change the default.');
    return;
  }
  io.say('');
  const domain = await askDomain(io, 'Enter the domain you wish to edit.', true, svc);
  io.say('');
  const current = svc.store.table().get(domain)!.settings;
  const { settings, reset } = await askEntrySettings(io, svc, domain, current);
  svc.destinations.editEntry(domain, settings, reset);
}

async function deleteEntry(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  if (svc.store.table().size === 0) {
    io.say('There are no entries to delete. The (Default) entry cannot be deleted.');
    return;
  }
  io.say('');
  const domain = await askDomain(io, 'Enter the domain you wish to delete.', true, svc);
  if (!(await askYesNo(io, `Are you sure you want to delete the entry for ${displayName(domain)}?`, false))) return;
  svc.destinations.deleteEntry(domain);
  io.say(`${displayName(domain)} deleted.`);
}

async function editDefault(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  const d = svc.store.defaults();
  io.say('');
  const next: Settings = { ...d };
  next.concurrency = await askInteger(io, 'Enter the default max concurrency limit.', RANGES.concurrency.min, RANGES.concurrency.max, d.concurrency);
  next.messagesPerConnection = await askInteger(io, 'Enter the default max number of messages per connection.', RANGES.messagesPerConnection.min, RANGES.messagesPerConnection.max, d.messagesPerConnection);
  if (await askYesNo(io, 'Do you wish to apply a default recipient limit?', d.recipientLimit !== null)) {
    const minutes = await askInteger(io, 'Enter the number of minutes used to measure the default recipient limit.', RANGES.minutes.min, RANGES.minutes.max, d.recipientLimit?.minutes ?? 60);
    const recipients = await askInteger(io, `Enter the default max number of recipients per ${minutes} minutes.`, RANGES.recipients.min, RANGES.recipients.max, d.recipientLimit?.recipients);
    next.recipientLimit = { recipients, minutes };
  } else next.recipientLimit = null;
  const per = await askChoice(io, 'Select how you want to apply the default limits:', ['One limit applies to the entire domain', 'Separate limit for each mail exchanger IP address'], d.limitPer === 'mx-ip' ? 1 : 0);
  next.limitPer = per === 1 ? 'mx-ip' : 'domain';
  const enf = await askChoice(io, 'Select how the limits will be enforced:', ['System Wide', 'Per Virtual Gateway(tm)'], d.enforce === 'virtual-gateway' ? 1 : 0);
  next.enforce = enf === 1 ? 'virtual-gateway' : 'system';
  const tls = await askChoice(io, 'Do you want to use TLS support?', TLS_MODES.map((m) => TLS_MODE_LABELS[m]), TLS_MODES.indexOf(d.tls));
  next.tls = TLS_MODES[tls]!;
  if (next.tls !== 'no') tlsWarning(io, svc);
  next.dane = await askDane(io, d.dane);
  next.mtaSts = await askMtaSts(io, d.mtaSts);
  next.bounceVerification = await askYesNo(io, 'Perform bounce verification address tagging?', d.bounceVerification);
  if (next.bounceVerification) io.say(SETTING_NOTES.bounceVerification);
  next.bounceProfile = await askProfile(io, svc, d.bounceProfile);
  next.ipPreference = await askIpPreference(io, d.ipPreference);
  svc.destinations.editDefaults(next);
}

async function detail(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  io.say('');
  const table = svc.store.table();
  const a = await askText(io, 'Enter the domain name to view, or enter DEFAULT to display details for the default, or enter ALL to display details for all.', (x) => {
    const u = x.toUpperCase();
    if (u === 'ALL' || u === 'DEFAULT' || x === DEFAULT_ENTRY_NAME) return null;
    try {
      return table.get(parseDestinationName(x)) ? null : `There is no entry for ${x}.`;
    } catch (e) {
      return (e as Error).message;
    }
  });
  const u = a.toUpperCase();
  const show = (name: string, e: Entry | undefined) => {
    io.say('');
    for (const l of detailLines(name, e, table.defaults)) io.say(l);
  };
  if (u === 'ALL') {
    for (const e of table.list()) show(e.name, e);
    show(DEFAULT_ENTRY_NAME, undefined);
  } else if (u === 'DEFAULT' || a === DEFAULT_ENTRY_NAME) show(DEFAULT_ENTRY_NAME, undefined);
  else {
    const n = parseDestinationName(a);
    show(n, table.get(n));
  }
}

async function clear(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  if (!(await askYesNo(io, 'Do you want to remove all entries (the (Default) entry is kept)?', false))) return;
  const n = svc.destinations.clearEntries();
  io.say(`${n} ${n === 1 ? 'entry' : 'entries'} removed.`);
}

async function importTable(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  io.say('');
  const file = await askText(io, 'Enter the name of the file to import.', () => null);
  let text: string;
  try {
    text = svc.readFile(file);
  } catch (e) {
    io.say(`Cannot read ${file}: ${(e as Error).message}. Nothing was changed.`);
    return;
  }
  const r = parseImport(text);
  if (!r.ok) {
    io.say(`${file} has ${r.errors.length} ${r.errors.length === 1 ? 'error' : 'errors'}; nothing was changed:`);
    for (const err of r.errors) io.say(`  line ${err.line}: ${err.message}`);
    return;
  }
  svc.destinations.importTable(r.defaults, r.entries, file);
  io.say(`Imported ${plural(r.entries.length + 1, 'entry', 'entries')} from ${file}.`);
}

async function exportTable(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  io.say('');
  const file = await askText(io, 'Enter a name for the exported file.', () => null);
  const table = svc.store.table();
  const overwrite = svc.fileExists(file);
  if (overwrite && !(await askYesNo(io, `The file ${file} already exists. Do you want to overwrite it?`, false))) {
    io.say('Nothing was written.');
    return;
  }
  try {
    svc.writeFile(file, exportFile(table.defaults, table.list()), overwrite);
  } catch (e) {
    io.say(`Cannot write ${file}: ${(e as Error).message}`);
    return;
  }
  io.say(`Exported ${plural(table.size + 1, 'entry', 'entries')} to ${file}.`);
}

async function setup(io: DialogueIo, svc: DestconfigServices): Promise<void> {
  const g = svc.store.globals();
  io.say('');
  const alert = await askYesNo(io, 'Do you want to send an alert when a required TLS connection fails?', g.requiredTlsAlert);
  if (alert) io.say(REQUIRED_TLS_ALERT_NOTE);
  const certs = svc.certificateNames();
  let client = svc.clientCertificate();
  if (certs.length > 0) {
    if (await askYesNo(io, 'Do you want to present a client certificate for outbound TLS connections?', client !== null)) {
      client = certs[await askChoice(io, 'Select the certificate:', certs, Math.max(0, client ? certs.indexOf(client) : 0))]!;
    } else client = null;
  }
  const hours = await askInteger(
    io,
    'Enter how many hours a host whose TLS handshake failed after 220 gets clear text under the Preferred settings (0 turns this off).',
    0,
    8760,
    g.brokenTlsMemoryHours,
  );
  svc.destinations.setGlobals({ requiredTlsAlert: alert, brokenTlsMemoryHours: hours });
  if (certs.length > 0) svc.setClientCertificate(client);
}

