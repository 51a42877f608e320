// A strict JSON (RFC 8259) parser for hand-written config files. Unlike JSON.parse it reports
// where a syntax error is (line and column) with a reason an operator can act on (missing
// comma, trailing comma, comment, single quotes...), and it notices keys defined twice in one
// object, which JSON.parse silently resolves by keeping the last one.
import type { PathSegment } from './path.js';
import { levenshtein } from './suggest.js';

export interface SourcePosition {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units (a tab counts as one). */
  column: number;
}

export interface DuplicateKey {
  path: PathSegment[];
  first: SourcePosition;
  second: SourcePosition;
}

export type JsonParseResult =
  | { ok: true; value: unknown; duplicates: DuplicateKey[] }
  | { ok: false; position: SourcePosition; reason: string };

/** Longest number literal accepted (a 64-bit integer has 20 digits; floats need a few more). */
const MAX_NUMBER_TEXT = 64;

class JsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const MAX_DEPTH = 256;

export function parseJson(text: string): JsonParseResult {
  const parser = new Parser(text);
  try {
    const value = parser.document();
    return { ok: true, value, duplicates: parser.duplicates };
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    return { ok: false, position: positionAt(text, e.offset), reason: e.reason };
  }
}

/** Line and column of a UTF-16 offset; a leading byte order mark takes no column. */
export function positionAt(text: string, offset: number): SourcePosition {
  let line = 1;
  let lineStart = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

interface OpenBracket {
  char: '{' | '[';
  offset: number;
}

class Parser {
  private pos = 0;
  private readonly open: OpenBracket[] = [];
  private readonly path: PathSegment[] = [];
  readonly duplicates: DuplicateKey[] = [];

  constructor(private readonly text: string) {}

  document(): unknown {
    if (this.text.charCodeAt(0) === 0xfeff) this.pos = 1;
    this.skipWhitespace();
    if (this.pos >= this.text.length) {
      this.pos = 0;
      throw this.error('the file is empty (expected a JSON object)');
    }
    const value = this.value();
    this.skipWhitespace();
    if (this.pos < this.text.length) {
      throw this.error(`unexpected ${this.describeHere()} after the end of the JSON document`);
    }
    return value;
  }

  private value(): unknown {
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return this.string();
      case 't':
      case 'f':
      case 'n':
        return this.literal();
      case undefined:
        throw this.endOfInput('a value');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        throw this.unexpected('a value');
    }
  }

  private object(): Record<string, unknown> {
    if (this.open.length >= MAX_DEPTH) throw this.error(`nesting deeper than ${MAX_DEPTH} levels`);
    this.open.push({ char: '{', offset: this.pos });
    this.pos++;
    const result: Record<string, unknown> = {};
    const seen = new Map<string, number>();
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      this.open.pop();
      return result;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') {
        if (this.text[this.pos] === '}') throw this.error("trailing comma before '}' (JSON allows no comma after the last property)");
        throw this.unexpected('a property name in double quotes');
      }
      const keyOffset = this.pos;
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') throw this.unexpected(`':' after property name ${JSON.stringify(key)}`);
      this.pos++;
      this.skipWhitespace();
      this.path.push(key);
      const value = this.value();
      this.path.pop();
      const previous = seen.get(key);
      if (previous !== undefined) {
        this.duplicates.push({
          path: [...this.path, key],
          first: positionAt(this.text, previous),
          second: positionAt(this.text, keyOffset),
        });
      } else {
        seen.set(key, keyOffset);
      }
      // defineProperty: a key such as "__proto__" must become data, not a prototype.
      Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === '}') {
        this.pos++;
        this.open.pop();
        return result;
      }
      if (c === '"') throw this.error("expected ',' or '}' after a property value (missing comma?)");
      throw this.unexpected("',' or '}' after a property value");
    }
  }

  private array(): unknown[] {
    if (this.open.length >= MAX_DEPTH) throw this.error(`nesting deeper than ${MAX_DEPTH} levels`);
    this.open.push({ char: '[', offset: this.pos });
    this.pos++;
    const result: unknown[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      this.open.pop();
      return result;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] === ']') throw this.error("trailing comma before ']' (JSON allows no comma after the last element)");
      this.path.push(result.length);
      result.push(this.value());
      this.path.pop();
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === ']') {
        this.pos++;
        this.open.pop();
        return result;
      }
      if (c !== undefined && /["{[\-0-9tfn]/.test(c)) throw this.error("expected ',' or ']' after an array element (missing comma?)");
      throw this.unexpected("',' or ']' after an array element");
    }
  }

  private string(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let chunkStart = this.pos;
    for (;;) {
      if (this.pos >= this.text.length) {
        this.pos = start;
        throw this.error('unterminated string (no closing double quote)');
      }
      const code = this.text.charCodeAt(this.pos);
      if (code === 0x22) {
        out += this.text.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (code === 0x5c) {
        out += this.text.slice(chunkStart, this.pos);
        out += this.escape();
        chunkStart = this.pos;
        continue;
      }
      if (code < 0x20) {
        if (code === 0x0a || code === 0x0d) {
          this.pos = start;
          throw this.error('unterminated string (strings cannot span lines; missing closing double quote?)');
        }
        throw this.error('control character in string (write it as an escape such as \\t)');
      }
      this.pos++;
    }
  }

  private escape(): string {
    const at = this.pos;
    const c = this.text[this.pos + 1];
    this.pos += 2;
    switch (c) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.pos = at;
          throw this.error('invalid \\u escape in string (expected four hex digits)');
        }
        this.pos += 4;
        return String.fromCharCode(parseInt(hex, 16));
      }
      default:
        this.pos = at;
        if (c === undefined) throw this.error('unterminated string (no closing double quote)');
        throw this.error(`invalid escape "\\${c}" in string`);
    }
  }

  private number(): number {
    const start = this.pos;
    // The whole token, however long (a window would cut a long number and report its tail as
    // an unexpected character); no value of a VIP map needs more than MAX_NUMBER_TEXT.
    let end = start;
    while (end < this.text.length && /[-+0-9A-Za-z.]/.test(this.text.charAt(end))) end++;
    if (end - start > MAX_NUMBER_TEXT) {
      throw this.error(`number too long (${end - start} characters, at most ${MAX_NUMBER_TEXT}): no value here needs so many digits`);
    }
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(start, end));
    const token = this.text.slice(start, end);
    if (match === null || match[0].length < token.length) {
      if (/^-?0[0-9]/.test(token)) throw this.error(`invalid number ${JSON.stringify(token)} (leading zeros are not allowed)`);
      if (/^-?0[xX]/.test(token)) throw this.error(`invalid number ${JSON.stringify(token)} (JSON has no hex numbers; write hex values as strings)`);
      throw this.error(`invalid number ${JSON.stringify(token)}`);
    }
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private literal(): boolean | null {
    const word = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.text.slice(this.pos, this.pos + 64))?.[0] ?? '';
    if (word === 'true' || word === 'false' || word === 'null') {
      this.pos += word.length;
      return word === 'true' ? true : word === 'false' ? false : null;
    }
    if (['true', 'false', 'null'].some((literal) => isNear(word, literal))) {
      throw this.error(`invalid literal '${word}' (expected true, false or null)`);
    }
    throw this.unexpected('a value');
  }

  private skipWhitespace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
        this.pos++;
        continue;
      }
      if (c === 0x2f /* / */) {
        const next = this.text[this.pos + 1];
        if (next === '/' || next === '*') throw this.error('comments are not allowed in JSON');
      }
      return;
    }
  }

  private describeHere(): string {
    const c = this.text[this.pos];
    if (c === undefined) return 'end of file';
    const word = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.text.slice(this.pos, this.pos + 64))?.[0];
    if (word !== undefined) return `'${word}'`;
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) return `character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
    return `'${c}'`;
  }

  private unexpected(expected: string): JsonSyntaxError {
    const c = this.text[this.pos];
    if (c === undefined) return this.endOfInput(expected);
    if (c === "'") return this.error('strings and property names must use double quotes, not single quotes');
    if ('\u201c\u201d\u2018\u2019'.includes(c)) {
      return this.error(`typographic quote ${c} found; JSON needs straight double quotes (")`);
    }
    if (expected.startsWith('a property name') && /[A-Za-z_$]/.test(c)) {
      return this.error(`property names must be in double quotes (found ${this.describeHere()})`);
    }
    if (expected === 'a value' && /[A-Za-z_]/.test(c)) {
      const word = this.describeHere();
      if (/^'(NaN|Infinity|undefined)'$/.test(word)) return this.error(`${word} is not a JSON value`);
      return this.error(`expected a value, found ${word} (strings must be in double quotes)`);
    }
    return this.error(`expected ${expected}, found ${this.describeHere()}`);
  }

  private endOfInput(expected: string): JsonSyntaxError {
    const innermost = this.open[this.open.length - 1];
    if (innermost !== undefined) {
      const where = positionAt(this.text, innermost.offset);
      const closer = innermost.char === '{' ? '}' : ']';
      return this.error(
        `unexpected end of file (expected ${expected}; '${innermost.char}' at line ${where.line}, column ${where.column} is never closed with '${closer}')`,
      );
    }
    return this.error(`unexpected end of file (expected ${expected})`);
  }

  private error(reason: string): JsonSyntaxError {
    return new JsonSyntaxError(this.pos, reason);
  }
}

/** A plausible misspelling of `literal`: a prefix, one edit away, or its letters shuffled. */
function isNear(word: string, literal: string): boolean {
  const sorted = (s: string): string => [...s].sort().join('');
  return literal.startsWith(word) || word.startsWith(literal) || levenshtein(word, literal) <= 1 || sorted(word) === sorted(literal);
}
