/**
 * The interactive `bounceconfig` dialogue in the appliance's style: the current profiles, the
 * operation menu (NEW, EDIT, DELETE, LIST, DETAIL), then each operation's questions with
 * `[default]>` answers (src/cli/dialogue/io.ts). Every change goes through ProfileStore, the
 * same calls as the batch commands, and only once all of an operation's questions are
 * answered: an operation abandoned at end of input changes nothing. An empty answer to the menu
 * or end of input ends the dialogue; a refusal from the store (a profile in use…) is printed and
 * the menu comes back.
 *
 * runBounceconfigDialogue(io, { profiles }) resolves when the dialogue ends; it never throws
 * EndOfInput.
 */
import { DEFAULT_PROFILE, DEFAULT_PROFILE_NAME, PROFILE_NAME_PATTERN, PROFILE_RANGES, parseAlternateAddress, type BounceProfile } from '../../bounce/profile.js';
import type { ProfileStore } from '../../config/profiles.js';
import { formatTable } from '../format.js';
import { PROFILE_LIST_HEADER, profileDetailLines, profileListRows } from '../profile-format.js';
import { askChoice, askInteger, askText, askYesNo, runMenu, type DialogueIo } from './io.js';

export interface BounceconfigServices {
  profiles: ProfileStore;
}

export const PROFILE_OPERATIONS = [
  ['NEW', 'Create a new profile.'],
  ['EDIT', 'Modify a profile.'],
  ['DELETE', 'Remove a profile.'],
  ['LIST', 'Display a summary list of all profiles.'],
  ['DETAIL', 'Display the details of one profile.'],
] as const;
type Operation = (typeof PROFILE_OPERATIONS)[number][0];

export async function runBounceconfigDialogue(io: DialogueIo, svc: BounceconfigServices): Promise<void> {
  await runMenu(
    io,
    PROFILE_OPERATIONS,
    () => {
      io.say('');
      io.say('Current bounce profiles:');
      svc.profiles.list().forEach((p, i) => io.say(`${i + 1}. ${p.name}`));
      io.say('');
    },
    (op) => run(op, io, svc),
  );
}

async function run(op: Operation, io: DialogueIo, svc: BounceconfigServices): Promise<void> {
  switch (op) {
    case 'NEW':
      return newProfile(io, svc);
    case 'EDIT':
      return editProfile(io, svc);
    case 'DELETE':
      return deleteProfile(io, svc);
    case 'LIST': {
      const usage = svc.profiles.usage();
      io.say('');
      io.say(formatTable(PROFILE_LIST_HEADER, profileListRows(svc.profiles.list(), (n) => usage.get(n.toLowerCase()) ?? [])));
      return;
    }
    case 'DETAIL': {
      const p = await pickProfile(io, svc.profiles.list(), 'Select the profile to view:');
      io.say('');
      for (const l of profileDetailLines(p, svc.profiles.usersOf(p.name))) io.say(l);
      return;
    }
  }
}

async function pickProfile(io: DialogueIo, list: BounceProfile[], question: string): Promise<BounceProfile> {
  io.say('');
  return list[await askChoice(io, question, list.map((p) => p.name), 0)]!;
}

/** Every field's question, the current values as the defaults. */
async function askFields(io: DialogueIo, cur: BounceProfile): Promise<Omit<BounceProfile, 'name'>> {
  const R = PROFILE_RANGES;
  io.say('');
  const maxRetries = await askInteger(io, 'Please enter the maximum number of retries.', R.maxRetries.min, R.maxRetries.max, cur.maxRetries);
  const maxQueueSeconds = await askInteger(
    io,
    'Please enter the maximum number of seconds a message may stay in the queue before being hard bounced.',
    R.maxQueueSeconds.min,
    R.maxQueueSeconds.max,
    cur.maxQueueSeconds,
  );
  const initialRetrySeconds = await askInteger(
    io,
    'Please enter the initial number of seconds to wait before retrying a message.',
    R.initialRetrySeconds.min,
    R.initialRetrySeconds.max,
    cur.initialRetrySeconds,
  );
  const maxRetrySeconds = await askInteger(
    io,
    'Please enter the maximum number of seconds to wait before retrying a message.',
    initialRetrySeconds,
    R.maxRetrySeconds.max,
    Math.max(initialRetrySeconds, cur.maxRetrySeconds),
  );
  const sendHardBounces = await askYesNo(io, 'Do you want a message sent for each hard bounce?', cur.sendHardBounces);
  const maxBounceCopy = await askInteger(
    io,
    'Please enter the largest message, in bytes, that a bounce returns whole (a larger one is returned as its headers).',
    R.maxBounceCopy.min,
    R.maxBounceCopy.max,
    cur.maxBounceCopy,
  );
  let { delayWarningInterval, delayWarningMax } = cur;
  const delayWarnings = await askYesNo(io, 'Do you want to send delay warning messages?', cur.delayWarnings);
  if (delayWarnings) {
    delayWarningInterval = await askInteger(
      io,
      'Please enter the minimum number of seconds between delay warning messages.',
      R.delayWarningInterval.min,
      R.delayWarningInterval.max,
      cur.delayWarningInterval,
    );
    delayWarningMax = await askInteger(
      io,
      'Please enter the maximum number of delay warning messages to send for each recipient.',
      R.delayWarningMax.min,
      R.delayWarningMax.max,
      cur.delayWarningMax,
    );
  }
  let alternateAddress: string | null = null;
  if (await askYesNo(io, 'Do you want hard bounce and delay warning messages sent to an alternate address, instead of the sender?', cur.alternateAddress !== null)) {
    const a = await askText(
      io,
      'Please enter the email address to send hard bounce and delay warning messages to.',
      (x) => {
        try {
          return parseAlternateAddress(x) === null ? 'Please enter an email address (local@domain).' : null;
        } catch (e) {
          return (e as Error).message;
        }
      },
      cur.alternateAddress ?? '',
    );
    alternateAddress = parseAlternateAddress(a);
  }
  return {
    maxRetries,
    maxQueueSeconds,
    initialRetrySeconds,
    maxRetrySeconds,
    sendHardBounces,
    dsnFormat: cur.dsnFormat,
    maxBounceCopy,
    delayWarnings,
    delayWarningInterval,
    delayWarningMax,
    alternateAddress,
  };
}

async function newProfile(io: DialogueIo, svc: BounceconfigServices): Promise<void> {
  io.say('');
  const name = await askText(io, 'Please create a name for the profile:', (a) => {
    if (!PROFILE_NAME_PATTERN.test(a)) return `"${a}" is not valid: use 1 to 64 letters, digits, _ . -`;
    const existing = svc.profiles.get(a);
    return existing ? `A profile named ${existing.name} already exists; use EDIT to change it.` : null;
  });
  const fields = await askFields(io, { ...DEFAULT_PROFILE, name });
  svc.profiles.create(name, fields);
  io.say(`Bounce profile ${name} created.`);
}

async function editProfile(io: DialogueIo, svc: BounceconfigServices): Promise<void> {
  const p = await pickProfile(io, svc.profiles.list(), 'Select the profile to edit:');
  const fields = await askFields(io, p);
  svc.profiles.edit(p.name, fields);
  io.say(`Bounce profile ${p.name} changed.`);
}

async function deleteProfile(io: DialogueIo, svc: BounceconfigServices): Promise<void> {
  const list = svc.profiles.list().filter((p) => p.name.toLowerCase() !== DEFAULT_PROFILE_NAME.toLowerCase());
  if (list.length === 0) {
    io.say(`There are no profiles to delete. The ${DEFAULT_PROFILE_NAME} profile cannot be deleted.`);
    return;
  }
  const p = await pickProfile(io, list, 'Select the profile to delete:');
  if (!(await askYesNo(io, `Are you sure you want to delete the profile ${p.name}?`, false))) return;
  svc.profiles.delete(p.name);
  io.say(`Bounce profile ${p.name} deleted.`);
}
