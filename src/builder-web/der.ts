// The few DER primitives the builder-web exec record needs, written by hand so that the
// strictness rules are ours and visible: definite minimal lengths only, primitive strings only,
// minimal two's-complement INTEGERs that fit the upstream 63-bit OCaml int, nothing left over.
// Only single-byte (low-number) tags exist in this format, so high-tag-number form is refused.
//
// Lengths are plain numbers: an artifact may exceed 4 GiB, and every length up to 2^53 is exact.
// INTEGER values are bigint, because console deltas are nanoseconds (an hour is 3.6e12 ns and
// the wire allows up to 2^62), and bigint keeps the decoder exact whatever a peer sends.
import { BuilderError } from '../common/errors.js';

export const TAG = {
  INTEGER: 0x02,
  NULL: 0x05,
  UTF8String: 0x0c,
  SEQUENCE: 0x30,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  /** [n] EXPLICIT: context class, constructed. */
  explicit: (n: number): number => 0xa0 | n,
} as const;

/** Bad bytes from a peer, or a record that cannot be written. `offset` is where in the input. */
export class BuilderWebFormatError extends BuilderError {
  constructor(message: string, readonly offset?: number) {
    super('BUILDER_WEB_FORMAT', offset === undefined ? message : `${message} (at byte ${offset})`);
    this.name = 'BuilderWebFormatError';
  }
}

/** The OCaml native int the upstream codec decodes INTEGERs into: 63-bit signed. */
export const INT63_MIN = -(1n << 62n);
export const INT63_MAX = (1n << 62n) - 1n;

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

const TAG_NAMES: Record<number, string> = {
  0x02: 'INTEGER',
  0x04: 'OCTET STRING',
  0x05: 'NULL',
  0x0c: 'UTF8String',
  0x13: 'PrintableString',
  0x17: 'UTCTime',
  0x18: 'GeneralizedTime',
  0x2c: 'constructed UTF8String',
  0x30: 'SEQUENCE',
};
export function tagName(tag: number): string {
  const known = TAG_NAMES[tag];
  if (known !== undefined) return `${known} (${hex(tag)})`;
  if ((tag & 0xe0) === 0xa0) return `[${tag & 0x1f}] EXPLICIT (${hex(tag)})`;
  if ((tag & 0xe0) === 0x80) return `primitive [${tag & 0x1f}] (${hex(tag)})`;
  return `tag ${hex(tag)}`;
}

// ---- writing -------------------------------------------------------------------------------

/** Bytes taken by a length field for a value of `length` bytes. */
export function lengthSize(length: number): number {
  if (length < 0x80) return 1;
  let n = 0;
  for (let v = length; v > 0; v = Math.floor(v / 256)) n++;
  return 1 + n;
}

/** Tag byte plus minimal definite length; the content follows separately (streaming needs that). */
export function header(tag: number, length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) throw new BuilderWebFormatError(`cannot encode length ${length}`);
  const out = Buffer.alloc(1 + lengthSize(length));
  out[0] = tag;
  if (length < 0x80) {
    out[1] = length;
  } else {
    const n = out.length - 2;
    out[1] = 0x80 | n;
    let v = length;
    for (let i = out.length - 1; i >= 2; i--) {
      out[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  return out;
}

/** Size of a whole element whose content is `length` bytes. */
export const elementSize = (length: number): number => 1 + lengthSize(length) + length;

export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([header(tag, body.length), body]);
}

/** Minimal two's-complement content octets. */
export function integerContent(value: bigint): Buffer {
  if (value < INT63_MIN || value > INT63_MAX) {
    throw new BuilderWebFormatError(`INTEGER ${value} does not fit the 63-bit signed range builder-web decodes`);
  }
  const bytes: number[] = [];
  let v = value;
  // Emit low bytes until the rest is pure sign extension that the last byte's top bit already shows.
  for (;;) {
    const byte = Number(BigInt.asUintN(8, v));
    bytes.unshift(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Buffer.from(bytes);
}

export const integer = (value: bigint): Buffer => tlv(TAG.INTEGER, integerContent(value));

// ---- reading -------------------------------------------------------------------------------

/** One element: its tag, where its header starts, and its content range [start, end). */
export interface Element {
  tag: number;
  at: number;
  start: number;
  end: number;
}

/**
 * Reads consecutive elements inside [pos, end) of one buffer. Offsets are absolute in the whole
 * input so every error points at the byte a person would look at with a hex dump.
 */
export class DerReader {
  constructor(
    readonly buf: Uint8Array,
    private pos: number,
    readonly end: number,
  ) {}

  static of(buf: Uint8Array): DerReader {
    return new DerReader(buf, 0, buf.length);
  }

  get offset(): number {
    return this.pos;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** The next tag byte without consuming it, or undefined at the end. */
  peekTag(): number | undefined {
    return this.atEnd() ? undefined : this.buf[this.pos];
  }

  /** Reads the next element, whatever its tag. */
  next(what: string): Element {
    const at = this.pos;
    if (at >= this.end) throw new BuilderWebFormatError(`expected ${what}, got end of data`, at);
    const tag = this.buf[at]!;
    if ((tag & 0x1f) === 0x1f) throw new BuilderWebFormatError(`expected ${what}, got a high-number tag ${hex(tag)}`, at);
    if (at + 1 >= this.end) throw new BuilderWebFormatError(`expected the length of ${what}, got end of data`, at + 1);
    const first = this.buf[at + 1]!;
    let length: number;
    let start: number;
    if (first < 0x80) {
      length = first;
      start = at + 2;
    } else if (first === 0x80) {
      throw new BuilderWebFormatError(`expected a definite length for ${what}, got indefinite length (0x80)`, at + 1);
    } else {
      const n = first & 0x7f;
      // Six bytes already exceed any input we could hold; more cannot be honest.
      if (n > 6) throw new BuilderWebFormatError(`expected a length for ${what}, got a ${n}-byte length field`, at + 1);
      if (at + 2 + n > this.end) throw new BuilderWebFormatError(`expected ${n} length bytes for ${what}, got end of data`, at + 2);
      if (this.buf[at + 2] === 0) {
        throw new BuilderWebFormatError(`expected a minimal length for ${what}, got a long-form length with a leading 00`, at + 1);
      }
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + this.buf[at + 2 + i]!;
      if (length < 0x80) {
        throw new BuilderWebFormatError(`expected a short-form length for ${what} (${length} bytes), got long form`, at + 1);
      }
      start = at + 2 + n;
    }
    const end = start + length;
    if (end > this.end) {
      throw new BuilderWebFormatError(`${what} claims ${length} bytes but only ${this.end - start} remain`, at);
    }
    this.pos = end;
    return { tag, at, start, end };
  }

  /** Reads the next element and insists on its tag. */
  expect(tag: number, what: string): Element {
    const at = this.pos;
    const got = this.peekTag();
    if (got !== undefined && got !== tag) {
      throw new BuilderWebFormatError(`expected ${what} as ${tagName(tag)}, got ${tagName(got)}`, at);
    }
    return this.next(what);
  }

  /** A reader over the content of a constructed element. */
  enter(el: Element): DerReader {
    return new DerReader(this.buf, el.start, el.end);
  }

  /** Nothing may follow: upstream refuses extra elements in a SEQUENCE. */
  expectEnd(what: string): void {
    if (!this.atEnd()) {
      const tag = this.buf[this.pos]!;
      throw new BuilderWebFormatError(`expected the end of ${what}, got an extra element, ${tagName(tag)}`, this.pos);
    }
  }

  bytes(el: Element): Buffer {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + el.start, el.end - el.start);
  }

  /** A strict DER INTEGER within the 63-bit signed range. */
  integer(what: string): bigint {
    const el = this.expect(TAG.INTEGER, what);
    const len = el.end - el.start;
    if (len === 0) throw new BuilderWebFormatError(`expected ${what} to have content, got an empty INTEGER`, el.at);
    const b0 = this.buf[el.start]!;
    if (len > 1) {
      const b1 = this.buf[el.start + 1]!;
      if ((b0 === 0x00 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) {
        throw new BuilderWebFormatError(`expected a minimal INTEGER for ${what}, got a redundant leading ${hex(b0)}`, el.start);
      }
    }
    let v = 0n;
    for (let i = el.start; i < el.end; i++) v = (v << 8n) | BigInt(this.buf[i]!);
    if (b0 & 0x80) v -= 1n << BigInt(8 * len);
    if (v < INT63_MIN || v > INT63_MAX) {
      throw new BuilderWebFormatError(`expected ${what} within 63-bit signed range, got a ${len}-byte INTEGER`, el.at);
    }
    return v;
  }

  /** A primitive UTF8String's raw bytes; the contents are not validated, as upstream. */
  utf8(what: string): Buffer {
    return this.bytes(this.expect(TAG.UTF8String, what));
  }
}
