/**
 * A message's header section and its fields, as stored (`queue show`, the page, and what the
 * listener reads of a message it accepts, e.g. `TLS-Required:`).
 */
export interface HeaderField {
  name: string;
  /** Unfolded (CRLF before continuation whitespace removed), without the leading space. */
  value: string;
}

/** The header section of a message (up to and including the line break before the blank line). */
export function headerSection(msg: Buffer): string {
  const crlf = msg.indexOf('\r\n\r\n');
  const lf = msg.indexOf('\n\n');
  const end = crlf !== -1 && (lf === -1 || crlf < lf) ? crlf + 2 : lf !== -1 ? lf + 1 : msg.length;
  return msg.subarray(0, end).toString('utf8');
}

export function headerFields(section: string): HeaderField[] {
  const out: HeaderField[] = [];
  for (const line of section.split(/\r?\n/)) {
    if (line === '') continue;
    const last = out[out.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push({ name: line.slice(0, colon), value: line.slice(colon + 1).replace(/^[ \t]+/, '') });
  }
  return out;
}
