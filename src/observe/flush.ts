/**
 * Counts kept in memory and written to a store in batches (the TLS report's, TLS reporting's):
 * a batch that cannot be written is merged back into what waits, so nothing counted is lost while
 * the store is unavailable, and the caller hears of the trouble (and of its end).
 */
/**
 * How long counts gather in memory before they are written. Under load, sessions to the same
 * domains repeat many times a second: one write of their sums, not one per event-loop turn
 * (a transaction each; 5 % of busy time in the internet bench). Gateway.stop writes what waits.
 */
export const COUNT_FLUSH_MS = 250;

export function flushBatch<V>(
  batch: Map<string, V>,
  write: (batch: Map<string, V>) => void,
  merge: (into: V, from: V) => void,
  onTrouble: (reason: string | null) => void,
): Map<string, V> {
  const next = new Map<string, V>();
  if (batch.size === 0) return next;
  try {
    write(batch);
    onTrouble(null);
  } catch (e) {
    for (const [k, v] of batch) {
      const p = next.get(k);
      if (p) merge(p, v);
      else next.set(k, v);
    }
    onTrouble((e as Error).message);
  }
  return next;
}
