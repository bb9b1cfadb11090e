/**
 * Bounce profiles as a service (see manage/destinations.ts for the shape): ProfileStore's
 * validation and refusals, with every change audited with what changed from what. It is a
 * ProfileStore, so the dialogue and the batch commands use it where they used the store.
 */
import { ProfileStore } from '../config/profiles.js';
import type { ConfigStore } from '../config/store.js';
import type { BounceProfile, ProfileInput } from '../bounce/profile.js';
import type { Recorder } from './audit.js';
import { settingsDiff } from './destinations.js';

export class ProfileService extends ProfileStore {
  constructor(
    config: ConfigStore,
    private readonly record: Recorder,
  ) {
    super(config);
  }

  override create(name: string, input: ProfileInput = {}): BounceProfile {
    const p = super.create(name, input);
    this.record('profile.new', p.name, settingsDiff(undefined, p));
    return p;
  }

  override edit(name: string, input: ProfileInput): BounceProfile {
    const before = this.get(name.trim());
    const p = super.edit(name, input);
    this.record('profile.edit', p.name, settingsDiff(before, p));
    return p;
  }

  override delete(name: string): string {
    const n = super.delete(name);
    this.record('profile.delete', n);
    return n;
  }
}
