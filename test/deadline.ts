/**
 * Every deadline a test waits against, in one place.
 *
 * Tests wait for events — a reply, a log line, a message at a peer, a process exit — and a
 * deadline only bounds how long a broken case takes to fail. So deadlines are generous, and
 * all of them scale together: POSTERN_TEST_TIME_SCALE (a positive number, default 3) multiplies
 * every value passed to `within`. A machine busy with other work makes the suite slower, not red:
 * run it with POSTERN_TEST_TIME_SCALE=10 there; use 1 to make a hang fail sooner while developing.
 *
 * The helpers that wait (harness waitFor, the SMTP and Postfix peers, the process helpers) apply
 * `within` to the base values their callers give, and describe/it timeouts are written
 * `{ timeout: within(N) }`, so no test file holds a raw wall-clock budget.
 */

function scaleFromEnv(): number {
  const raw = process.env.POSTERN_TEST_TIME_SCALE;
  if (raw === undefined || raw.trim() === '') return 3;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`POSTERN_TEST_TIME_SCALE must be a positive number, not ${JSON.stringify(raw)}`);
  }
  return n;
}

export const TIME_SCALE = scaleFromEnv();

/** A deadline of `baseMs` on an unloaded machine, scaled for this one. */
export function within(baseMs: number): number {
  return Math.ceil(baseMs * TIME_SCALE);
}
