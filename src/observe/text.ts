/**
 * Untrusted text on its way to a person or a line-oriented file. Pure.
 *
 * Certificate names, SMTP replies, EHLO names, DNS names and envelope fields come from peers
 * and clients. Written raw, a CR or LF would start a forged log line or DSN header, and an ESC,
 * BEL or CSI would drive the terminal of the operator reading it. Every text sink (mail log,
 * DSN, CLI output) passes such text through these functions, and only these.
 *
 * escapeText(s): C0 controls, DEL and C1 controls as `\xHH`; the Unicode line and paragraph
 *   separators and the bidirectional overrides and isolates as `\u{HHHH}`. Everything else,
 *   including a backslash, is left as it is: the result holds no control character, so escaping
 *   twice changes nothing.
 * escapeLines(s): escapeText for each line of a multi-line text of Postern's own, keeping its
 *   newlines and tabs.
 * jsonLine(value): JSON.stringify on one line, with DEL, C1 and the same Unicode controls as
 *   `\uHHHH` escapes (JSON.stringify already escapes C0), so the line is valid JSON, holds the
 *   same value, and is safe to print.
 */

const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_IN_JSON = /[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function hex(c: string, width: number): string {
  return c.charCodeAt(0).toString(16).padStart(width, '0');
}

export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => (c.charCodeAt(0) < 0x100 ? `\\x${hex(c, 2)}` : `\\u{${hex(c, 4)}}`));
}

export function escapeLines(s: string): string {
  // Tabs of Postern's own layout are kept; they cannot start a line or move the cursor back.
  return s.split('\n').map((line) => line.split('\t').map(escapeText).join('\t')).join('\n');
}

export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
}

/** jsonLine with indentation, for CLI `--json` output. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
}
