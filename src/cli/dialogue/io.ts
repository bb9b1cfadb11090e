/**
 * The question-and-answer layer of the appliance-style dialogues: prompts in the `[default]>`
 * form, Y/N questions, numbered menus and numbers within a range, each asked again with the
 * reason when the answer is invalid. Works on a terminal and on piped input (a here-document):
 * when the input is not a terminal each answer is echoed after its prompt, so the output reads
 * as the transcript an administrator would see. End of input ends the dialogue (EndOfInput).
 */
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export class EndOfInput extends Error {
  constructor() {
    super('end of input');
  }
}

export interface DialogueIo {
  say(text: string): void;
  /** Prints `prompt` then `[def]>` and returns the trimmed answer (the default when empty). */
  ask(prompt: string | null, def?: string): Promise<string>;
}

export class StreamIo implements DialogueIo {
  private readonly rl: Interface;
  private readonly lines: string[] = [];
  private waiting: ((l: string | null) => void) | null = null;
  private ended = false;
  private readonly echo: boolean;

  constructor(
    input: Readable & { isTTY?: boolean },
    private readonly output: Writable,
  ) {
    this.echo = !input.isTTY;
    this.rl = createInterface({ input, terminal: false });
    this.rl.on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(l);
      } else this.lines.push(l);
    });
    this.rl.on('close', () => {
      this.ended = true;
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(null);
      }
    });
  }

  say(text: string): void {
    this.output.write(text + '\n');
  }

  private next(): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  async ask(prompt: string | null, def = ''): Promise<string> {
    const inline = prompt !== null && prompt.endsWith('?');
    const marker = `[${def}]> `;
    if (prompt !== null && !inline) this.output.write(prompt + '\n');
    this.output.write(inline ? `${prompt} ${marker}` : marker);
    const line = await this.next();
    if (line === null) {
      this.output.write('\n');
      throw new EndOfInput();
    }
    if (this.echo) this.output.write(line + '\n');
    const answer = line.trim();
    return answer === '' ? def : answer;
  }

  close(): void {
    this.rl.close();
  }
}

/** Y/N question; `def` is shown as [Y] or [N]. */
export async function askYesNo(io: DialogueIo, question: string, def: boolean): Promise<boolean> {
  for (;;) {
    const a = (await io.ask(question, def ? 'Y' : 'N')).toLowerCase();
    if (a === 'y' || a === 'yes') return true;
    if (a === 'n' || a === 'no') return false;
    io.say('Please answer Y or N.');
  }
}

/** A numbered menu; returns the index chosen. Accepts the number or (a unique prefix of) the label. */
export async function askChoice(io: DialogueIo, question: string, labels: string[], defIndex: number): Promise<number> {
  for (;;) {
    io.say(question);
    labels.forEach((l, i) => io.say(`${i + 1}. ${l}`));
    const a = await io.ask(null, String(defIndex + 1));
    const n = Number(a);
    if (/^\d+$/.test(a) && n >= 1 && n <= labels.length) return n - 1;
    const byName = labels.map((l, i) => [l.toLowerCase(), i] as const).filter(([l]) => l === a.toLowerCase());
    if (byName.length === 1) return byName[0]![1];
    io.say(`Please enter a number from 1 to ${labels.length}.`);
  }
}

/** An integer within [min, max]; `def` may be undefined for no default. */
export async function askInteger(io: DialogueIo, prompt: string, min: number, max: number, def?: number): Promise<number> {
  for (;;) {
    const a = await io.ask(prompt, def === undefined ? '' : String(def));
    const clean = a.replace(/,/g, '');
    const n = Number(clean);
    if (/^\d+$/.test(clean) && n >= min && n <= max) return n;
    io.say(
      a === ''
        ? `Please enter a number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}.`
        : `"${a}" is not valid: enter a number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}.`,
    );
  }
}

/** A non-empty answer, checked by `check` (which returns an error message or null). */
export async function askText(io: DialogueIo, prompt: string, check: (a: string) => string | null, def = ''): Promise<string> {
  for (;;) {
    const a = await io.ask(prompt, def);
    if (a === '') {
      io.say('An answer is required.');
      continue;
    }
    const err = check(a);
    if (err === null) return a;
    io.say(err);
  }
}

/** A menu of operations: [NAME, one-line description]. */
export type Operations<Op extends string> = readonly (readonly [Op, string])[];

/** Case-insensitive operation name or unique prefix; an error message (a string) otherwise. */
export function matchOperation<Op extends string>(operations: Operations<Op>, answer: string): { op: Op } | string {
  const a = answer.trim().toUpperCase();
  const exact = operations.find(([name]) => name === a);
  if (exact) return { op: exact[0] };
  const found = operations.filter(([name]) => name.startsWith(a));
  if (found.length === 1) return { op: found[0]![0] };
  if (found.length === 0) return `Unknown operation "${answer.trim()}". Choose one of ${operations.map(([n]) => n).join(', ')}.`;
  return `"${answer.trim()}" is ambiguous: it could be ${found.map(([n]) => n).join(', ')}.`;
}

/**
 * The appliance's operation loop: `header`, the menu, an answer; Enter alone or end of input
 * leaves. A refusal from an operation (an entry that exists, a bad file…) is said and the menu
 * comes back; nothing was changed by it.
 */
export async function runMenu<Op extends string>(
  io: DialogueIo,
  operations: Operations<Op>,
  header: () => void,
  run: (op: Op) => Promise<void>,
): Promise<void> {
  try {
    for (;;) {
      header();
      io.say('Choose the operation you want to perform:');
      for (const [name, text] of operations) io.say(`- ${name} - ${text}`);
      const answer = await io.ask(null, '');
      if (answer === '') return;
      const m = matchOperation(operations, answer);
      if (typeof m === 'string') {
        io.say(m);
        continue;
      }
      try {
        await run(m.op);
      } catch (e) {
        if (e instanceof EndOfInput) throw e;
        io.say(e instanceof Error ? e.message : String(e));
      }
    }
  } catch (e) {
    if (e instanceof EndOfInput) return;
    throw e;
  }
}
