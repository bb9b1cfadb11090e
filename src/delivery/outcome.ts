/**
 * Turning SMTP replies into per-recipient outcomes (SPEC §4): 2xx delivered, 4xx and connection
 * failures soft (retry), 5xx hard (bounce). Pure.
 */
import type { TransactionResult } from '../smtp/client.js';
import { replyText, type Reply } from '../smtp/reply.js';

export type RecipientOutcome =
  | { kind: 'delivered'; reply: string }
  | { kind: 'soft'; enhanced: string; reason: string }
  | { kind: 'hard'; enhanced: string; reason: string };

export function outcomeOfReply(r: Reply, remote: string): RecipientOutcome {
  const text = `${remote} said: ${replyText(r)}`;
  if (r.code < 300) return { kind: 'delivered', reply: replyText(r) };
  const enhanced = r.enhanced && r.enhanced[0] === String(r.code)[0] ? r.enhanced : r.code >= 500 ? '5.0.0' : '4.0.0';
  return r.code >= 500 ? { kind: 'hard', enhanced, reason: text } : { kind: 'soft', enhanced, reason: text };
}

/** One outcome per recipient of the transaction, in envelope order. */
export function outcomesOf(result: TransactionResult, count: number, remote: string): RecipientOutcome[] {
  if (result.kind === 'message-refused') {
    const o = outcomeOfReply(result.reply, remote);
    return Array.from({ length: count }, () => o);
  }
  return result.recipients.map((rcpt) => {
    if (rcpt.code >= 300) return outcomeOfReply(rcpt, remote);
    // Accepted, but the message itself was never confirmed: not delivered.
    if (!result.data) return { kind: 'soft', enhanced: '4.4.2', reason: `${remote} accepted the recipient but did not confirm the message` };
    return outcomeOfReply(result.data, remote);
  });
}
