/**
 * What the public listener does with one recipient (SPEC §6, §8). Pure.
 *
 * Only the organisation's local domains are accepted (anything else: 554 5.7.1 relay denied).
 * A tagged recipient is checked against the keys — strictly for a bounce (null sender), leniently
 * for mail with a real sender (a reply: expired tags and older keys still verify) — and, when
 * valid, delivered to the address without its tag. An invalid tag, or an untagged bounce unless
 * untagged bounces are valid, gets the configured action: reject at RCPT, or accept (without the
 * tag) with the configured header. Every decision about a tag says why, for the mail log.
 */
import { checkTag, parseTag, type TagKey } from './batv.js';
import { mostSpecificName } from '../controls/names.js';
import { normaliseDomain } from '../tls/names.js';

export interface InboundPolicy {
  localDomains: ReadonlySet<string>;
  keys: readonly TagKey[];
  invalidAction: 'reject' | 'add-header';
  untaggedValid: boolean;
}

/** What the mail log records about a tag decision. */
export interface TagVerdict {
  result: 'valid' | 'invalid' | 'untagged';
  /** The rule the tag was checked under. */
  kind: 'bounce' | 'reply';
  reason: string;
  action: 'accepted' | 'rejected' | 'header';
}

export type RecipientDecision =
  | { accept: true; deliverTo: string; verdict?: TagVerdict; addHeader: boolean }
  | { accept: false; code: number; reply: string; verdict?: TagVerdict };

/** Whether the address's domain is one of the local domains (exact, or under a `.suffix` one). */
function isLocal(localDomains: ReadonlySet<string>, address: string): boolean {
  const d = normaliseDomain(address.slice(address.lastIndexOf('@') + 1));
  return d !== null && d !== '' && mostSpecificName(d, (n) => localDomains.has(n)) !== undefined;
}

export function decideRecipient(sender: string, address: string, p: InboundPolicy, now: number): RecipientDecision {
  const tag = parseTag(address);
  const target = tag ? tag.original : address;
  if (!isLocal(p.localDomains, target)) return { accept: false, code: 554, reply: `5.7.1 <${address}>: Relay access denied` };
  const kind = sender === '' ? 'bounce' : 'reply';
  const invalid = (result: 'invalid' | 'untagged', reason: string): RecipientDecision =>
    p.invalidAction === 'reject'
      ? { accept: false, code: 550, reply: `5.7.1 <${address}>: ${result === 'untagged' ? 'untagged bounce refused' : `invalid bounce address tag (${reason})`}`, verdict: { result, kind, reason, action: 'rejected' } }
      : { accept: true, deliverTo: target, addHeader: true, verdict: { result, kind, reason, action: 'header' } };
  if (!tag) {
    if (kind === 'reply') return { accept: true, deliverTo: address, addHeader: false };
    if (p.untaggedValid) return { accept: true, deliverTo: address, addHeader: false, verdict: { result: 'untagged', kind, reason: 'untagged bounces are valid (bvconfig setup --untagged-valid yes)', action: 'accepted' } };
    return invalid('untagged', 'the recipient address carries no tag');
  }
  const check = checkTag(tag, p.keys, now, kind === 'bounce' ? 'strict' : 'lenient');
  if (check.valid) return { accept: true, deliverTo: target, addHeader: false, verdict: { result: 'valid', kind, reason: `key ${tag.keyNumber}`, action: 'accepted' } };
  return invalid('invalid', check.reason);
}
