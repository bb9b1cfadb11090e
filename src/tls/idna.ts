/**
 * IDNA2008 label rules (RFC 5890–5893), without UTS #46 mapping. Pure.
 *
 * isULabel(label): true when `label` is a valid U-label exactly as written: at least one
 *   non-ASCII character, NFC, every code point PVALID under RFC 5892 (or a CONTEXTO point whose
 *   rule holds), no hyphen at the start, the end or in positions 3–4, not starting with a
 *   combining mark, and right-to-left labels obeying the Bidi rule (RFC 5893, by script).
 *   Nothing is mapped: an upper-case, full-width or compatibility character, an ignorable
 *   (soft hyphen, zero-width space), a space, a symbol or a control makes the label invalid.
 *
 * Where JavaScript's Unicode data cannot express a rule exactly, the rule errs towards
 * "invalid": the joiners ZWJ/ZWNJ (CONTEXTJ) are refused, and the Bidi classes are taken from
 * the script. A refused name never matches anything, which is the safe failure for a name check.
 */

// RFC 5892 §2.6 Exceptions: these override every other rule.
const EXCEPTIONS_PVALID = new Set([0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007]);
const EXCEPTIONS_DISALLOWED = new Set([0x0640, 0x07fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b]);
const CONTEXTO = new Set([0x00b7, 0x0375, 0x05f3, 0x05f4, 0x30fb]);
const isArabicIndicDigit = (cp: number): boolean => cp >= 0x0660 && cp <= 0x0669;
const isExtArabicIndicDigit = (cp: number): boolean => cp >= 0x06f0 && cp <= 0x06f9;

const UNASSIGNED = /^\p{Cn}$/u;
const IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{White_Space}\p{Noncharacter_Code_Point}]$/u;
const LETTER_DIGIT = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
const COMBINING_MARK = /^\p{M}/u;
const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const KANA_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;
// Scripts written right to left: their letters are Bidi class R or AL.
const RTL_LETTER = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Yezidi}]/u;

function inIgnorableBlock(cp: number): boolean {
  // Combining Diacritical Marks for Symbols, Musical Symbols, Ancient Greek Musical Notation.
  return (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0x1d100 && cp <= 0x1d24f);
}

function isOldHangulJamo(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97f) || (cp >= 0xd7b0 && cp <= 0xd7ff);
}

/** RFC 5892 §2 Unstable: a code point that NFKC or case folding would change. */
function isUnstable(ch: string): boolean {
  const nfkc = ch.normalize('NFKC');
  return nfkc.toLowerCase().normalize('NFKC') !== ch;
}

type Derived = 'PVALID' | 'CONTEXTO' | 'DISALLOWED';

/** The derived property of RFC 5892 §3, in its order of precedence. */
export function derivedProperty(cp: number): Derived {
  if (EXCEPTIONS_PVALID.has(cp)) return 'PVALID';
  if (EXCEPTIONS_DISALLOWED.has(cp)) return 'DISALLOWED';
  if (CONTEXTO.has(cp) || isArabicIndicDigit(cp) || isExtArabicIndicDigit(cp)) return 'CONTEXTO';
  const ch = String.fromCodePoint(cp);
  if (UNASSIGNED.test(ch)) return 'DISALLOWED';
  if ((cp >= 0x61 && cp <= 0x7a) || (cp >= 0x30 && cp <= 0x39) || cp === 0x2d) return 'PVALID';
  if (cp === 0x200c || cp === 0x200d) return 'DISALLOWED'; // CONTEXTJ: refused (see header)
  if (cp < 0x80) return 'DISALLOWED'; // upper case and every other ASCII character
  if (isUnstable(ch)) return 'DISALLOWED';
  if (IGNORABLE.test(ch)) return 'DISALLOWED';
  if (inIgnorableBlock(cp)) return 'DISALLOWED';
  if (isOldHangulJamo(cp)) return 'DISALLOWED';
  return LETTER_DIGIT.test(ch) ? 'PVALID' : 'DISALLOWED';
}

/** RFC 5892 Appendix A rules for the CONTEXTO code points at index `i` of `cps`. */
function contextHolds(cps: number[], i: number): boolean {
  const cp = cps[i]!;
  const at = (k: number): string => (k >= 0 && k < cps.length ? String.fromCodePoint(cps[k]!) : '');
  switch (cp) {
    case 0x00b7: // MIDDLE DOT: only between two "l" (Catalan)
      return cps[i - 1] === 0x6c && cps[i + 1] === 0x6c;
    case 0x0375: // GREEK LOWER NUMERAL SIGN: followed by Greek
      return GREEK.test(at(i + 1));
    case 0x05f3:
    case 0x05f4: // HEBREW GERESH, GERSHAYIM: preceded by Hebrew
      return HEBREW.test(at(i - 1));
    case 0x30fb: // KATAKANA MIDDLE DOT: the label has Hiragana, Katakana or Han
      return cps.some((c) => c !== 0x30fb && KANA_HAN.test(String.fromCodePoint(c)));
    default:
      if (isArabicIndicDigit(cp)) return !cps.some(isExtArabicIndicDigit);
      if (isExtArabicIndicDigit(cp)) return !cps.some(isArabicIndicDigit);
      return false;
  }
}

/**
 * RFC 5893 for a label holding right-to-left letters: it starts with one, holds no
 * left-to-right letter, and ends with a right-to-left letter, a digit or a combining mark.
 */
function bidiHolds(label: string): boolean {
  if (!RTL_LETTER.test(label)) return true;
  const chars = [...label];
  if (!RTL_LETTER.test(chars[0]!)) return false;
  for (const ch of chars) {
    if (/\p{L}/u.test(ch) && !RTL_LETTER.test(ch)) return false;
  }
  let end = chars.length - 1;
  while (end > 0 && /\p{Mn}/u.test(chars[end]!)) end--;
  const last = chars[end]!;
  return RTL_LETTER.test(last) || /\p{Nd}/u.test(last);
}

export function isULabel(label: string): boolean {
  if (label.length === 0 || !/[^\x00-\x7f]/.test(label)) return false;
  if (label.normalize('NFC') !== label) return false;
  if (label.startsWith('-') || label.endsWith('-') || label.slice(2, 4) === '--') return false;
  if (COMBINING_MARK.test(label)) return false;
  const cps = Array.from(label, (c) => c.codePointAt(0)!);
  for (let i = 0; i < cps.length; i++) {
    const p = derivedProperty(cps[i]!);
    if (p === 'DISALLOWED') return false;
    if (p === 'CONTEXTO' && !contextHolds(cps, i)) return false;
  }
  return bidiHolds(label);
}
