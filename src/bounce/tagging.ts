/**
 * Which envelope sender a message goes out with (SPEC §8). Pure: tagged with the newest active
 * key when the destination's entry (or Default) says so, never for the null sender, a message
 * that came in on the public listener (it is the organisation's inbound mail, not its own) or an
 * address already tagged.
 */
import type { BvKey } from '../config/bounce-verification.js';
import { tagKeys } from '../config/bounce-verification.js';
import { tagAddress } from './batv.js';

export function outboundSender(message: { sender: string; inbound: boolean }, tagging: boolean, keys: readonly BvKey[], now: number): string {
  if (!tagging || message.inbound || message.sender === '') return message.sender;
  const { active } = tagKeys([...keys]);
  return active ? tagAddress(message.sender, active, now) : message.sender;
}
