/**
 * Bounce profiles (SPEC §7, `postern bounceconfig`): the operations on the profiles stored in
 * config.db (table `bounce_profiles`, src/config/profile-table.ts), shared by the batch
 * commands, the dialogue and later the web page. The profile named `Default` always exists: it
 * can be edited, never deleted. Profile names are 1–64 letters, digits, `_ . -` and compare
 * without case (`slow` and `Slow` are the same profile; the spelling given at NEW is kept).
 *
 * ProfileStore(config) — every change is one IMMEDIATE transaction on the ConfigStore's
 * database; a rejected change leaves everything as it was:
 * - list()              every profile, `Default` first, then by name.
 * - get(name)           one profile (any case), or undefined.
 * - create(name, input) a new profile: the SPEC §7 values (DEFAULT_PROFILE), changed by `input`.
 *                       ConfigError when the name exists.
 * - edit(name, input)   changes the given fields of an existing profile; the whole result is
 *                       validated (e.g. maximum retry wait ≥ initial retry wait).
 * - delete(name)        refused for `Default`, and while any destination entry names the
 *                       profile (the (Default) entry included), naming those entries.
 * - usersOf(name)       display names of the entries that name the profile; usage() the same
 *                       for every profile at once (one read of the table).
 * Bad values throw ValidationError (field, value, allowed range); conflicts ConfigError.
 */
import { checkProfile, checkProfileName, DEFAULT_PROFILE, DEFAULT_PROFILE_NAME, type BounceProfile, type ProfileInput } from '../bounce/profile.js';
import { displayName } from '../controls/names.js';
import { DEFAULT_ENTRY_NAME } from '../controls/types.js';
import { deleteProfileRow, readProfile, readProfiles, writeProfile } from './profile-table.js';
import { ConfigError, type ConfigStore } from './store.js';

/** How many entry names a refusal lists before "and N more". */
const USERS_SHOWN = 10;

export class ProfileStore {
  constructor(private readonly config: ConfigStore) {}

  list(): BounceProfile[] {
    const all = [...readProfiles(this.config.db).values()];
    const isDefault = (p: BounceProfile) => p.name.toLowerCase() === DEFAULT_PROFILE_NAME.toLowerCase();
    return all.sort((a, b) => Number(isDefault(b)) - Number(isDefault(a)) || a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
  }

  get(name: string): BounceProfile | undefined {
    return readProfile(this.config.db, name);
  }

  create(name: string, input: ProfileInput = {}): BounceProfile {
    const n = checkProfileName(name.trim());
    const p = checkProfile({ ...DEFAULT_PROFILE, ...defined(input), name: n });
    const tx = this.config.db.transaction(() => {
      const existing = readProfile(this.config.db, n);
      if (existing) throw new ConfigError(`a bounce profile named ${existing.name} already exists; use edit`);
      writeProfile(this.config.db, p);
    });
    tx.immediate();
    return p;
  }

  edit(name: string, input: ProfileInput): BounceProfile {
    const tx = this.config.db.transaction((): BounceProfile => {
      const current = readProfile(this.config.db, name.trim());
      if (!current) throw new ConfigError(`no bounce profile named ${name}; use new`);
      const p = checkProfile({ ...current, ...defined(input), name: current.name });
      writeProfile(this.config.db, p);
      return p;
    });
    return tx.immediate();
  }

  delete(name: string): string {
    const tx = this.config.db.transaction((): string => {
      const current = readProfile(this.config.db, name.trim());
      if (!current) throw new ConfigError(`no bounce profile named ${name}`);
      if (current.name.toLowerCase() === DEFAULT_PROFILE_NAME.toLowerCase()) {
        throw new ConfigError(`the ${DEFAULT_PROFILE_NAME} bounce profile cannot be deleted (it can be edited)`);
      }
      const users = this.usersOf(current.name);
      if (users.length > 0) {
        const shown = users.slice(0, USERS_SHOWN).join(', ') + (users.length > USERS_SHOWN ? ` and ${users.length - USERS_SHOWN} more` : '');
        throw new ConfigError(
          `the bounce profile ${current.name} is used by ${users.length === 1 ? 'the entry' : `${users.length} entries:`} ${shown}; ` +
            `give ${users.length === 1 ? 'it' : 'them'} another profile with postern destconfig first`,
        );
      }
      deleteProfileRow(this.config.db, current.name);
      return current.name;
    });
    return tx.immediate();
  }

  usersOf(name: string): string[] {
    return this.usage().get(name.toLowerCase()) ?? [];
  }

  /** For every profile name an entry uses (lower case): the display names of those entries. */
  usage(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const add = (profile: string, entry: string) => {
      const key = profile.toLowerCase();
      const list = out.get(key) ?? [];
      list.push(entry);
      out.set(key, list);
    };
    add(this.config.defaults().bounceProfile, DEFAULT_ENTRY_NAME);
    for (const e of this.config.table().list()) if (e.settings.bounceProfile !== undefined) add(e.settings.bounceProfile, displayName(e.name));
    return out;
  }
}

/** Leaves out fields given as undefined, so that they do not hide the base values. */
function defined(input: ProfileInput): ProfileInput {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ProfileInput;
}
