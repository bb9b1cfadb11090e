/**
 * SMTP reply parsing (RFC 5321 §4.2). Pure. Accepts the forms real servers send: `250-text`,
 * `250 text`, a bare `250`, and `250 ` with nothing after it (smtp-sink ends its EHLO reply so).
 */

export interface Reply {
  code: number;
  /** Enhanced status code (RFC 3463) from the last line, when present, e.g. `5.1.1`. */
  enhanced?: string;
  lines: string[];
}

export type LineParse = { kind: 'line'; code: number; last: boolean; text: string } | { kind: 'bad'; line: string };

export function parseReplyLine(line: string): LineParse {
  const m = /^([2-5]\d\d)([ -]?)(.*)$/s.exec(line);
  if (!m) return { kind: 'bad', line };
  const sep = m[2]!;
  if (sep === '' && m[3] !== '') return { kind: 'bad', line };
  return { kind: 'line', code: Number(m[1]), last: sep !== '-', text: m[3]! };
}

export function enhancedOf(text: string): string | undefined {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)/.exec(text);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : undefined;
}

/** One line of text for logs and DSNs: `550 5.1.1 no such user`. */
export function replyText(r: Reply): string {
  return `${r.code} ${r.lines.join(' / ')}`.trim();
}

/** EHLO keywords, upper-cased, with their parameters. */
export function parseEhlo(r: Reply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.lines.slice(1)) {
    const [kw, ...rest] = line.trim().split(/\s+/);
    if (kw) ext.set(kw.toUpperCase(), rest.join(' '));
  }
  return ext;
}
