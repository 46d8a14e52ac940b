// CBOR with plain maps and byte strings only: no record extension, so that any CBOR
// implementation can speak to us, and so that decoded values are plain objects we validate.
//
// Before cbor-x sees a frame, its header structure is walked (checkCbor): a frame from the
// network is untrusted, and cbor-x would happily turn 16 MiB of one-byte empty maps into
// 16.7 million objects, or spend minutes on a 400 KiB bignum. The walk refuses, before anything
// is allocated: every tag (the protocol uses none: bignums, dates, cbor-x's records and shared
// structures are all tags), lengths beyond the bytes that remain, non-string map keys, nesting
// deeper than the protocol goes, and more allocating items (maps, arrays, byte strings) than a
// fixed share of the frame's size. It costs one pass over the headers, never over string data.
import { Encoder } from 'cbor-x';
import { BuilderError } from '../common/errors.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

/** Containers and byte strings every frame may hold whatever its size (a frame of 2,048 console lines). */
export const BASE_OBJECTS = 8192;
/** Past the base, one object per this many bytes: a frame expands to a bounded multiple of its size. */
export const BYTES_PER_OBJECT = 16;
/** The protocol nests five deep at most (reply data a few more); 32 leaves room and bounds cbor-x's recursion. */
export const MAX_DEPTH = 32;

export class DecodeError extends BuilderError {
  constructor(message: string) {
    super('PROTOCOL', message);
    this.name = 'DecodeError';
  }
}

export function encodeValue(value: unknown): Buffer {
  return cbor.encode(value) as Buffer;
}

/** Decodes one frame's payload, after checkCbor. */
export function decodeValue(bytes: Uint8Array): unknown {
  checkCbor(bytes);
  return cbor.decode(bytes);
}

/** The most maps, arrays and byte strings a frame of this many bytes may decode into. */
export function objectBudget(size: number): number {
  return BASE_OBJECTS + Math.floor(size / BYTES_PER_OBJECT);
}

/**
 * Walks the CBOR item in `bytes` without decoding it and throws a DecodeError if it is not
 * exactly one well-formed item the protocol could have sent, within the limits above.
 */
export function checkCbor(bytes: Uint8Array): void {
  const end = bytes.length;
  const budget = objectBudget(end);
  let pos = 0;
  let objects = 0;
  // per open container: items still to read (-1: indefinite, ends at a break), and whether the
  // next item is a map key (maps are walked as 2n items; keys sit at even positions)
  const left: number[] = [];
  const isMap: boolean[] = [];
  const index: number[] = [];
  let depth = 0;
  const bad = (what: string): never => {
    throw new DecodeError(`malformed CBOR at byte ${pos} of ${end}: ${what}`);
  };

  /** Reads the argument of a header whose additional info is `ai`; -1 for indefinite. */
  const argument = (ai: number): number => {
    if (ai < 24) return ai;
    const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : ai === 31 ? 0 : bad(`reserved additional info ${ai}`);
    if (ai === 31) return -1;
    if (pos + n > end) bad('truncated header');
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + bytes[pos + i]!;
    pos += n;
    return v; // 8-byte lengths above 2^53 lose precision but are far beyond `end` anyway
  };

  for (;;) {
    if (pos >= end) bad(depth > 0 ? 'truncated: a container is not complete' : 'no item');
    const initial = bytes[pos++]!;
    const major = initial >> 5;
    const ai = initial & 31;

    // a break ends the innermost indefinite container
    if (initial === 0xff) {
      if (depth === 0 || left[depth - 1] !== -1) bad('unexpected break');
      if (isMap[depth - 1] && index[depth - 1]! % 2 === 1) bad('map with a key but no value');
      depth--;
    } else {
      if (depth > 0 && isMap[depth - 1] && index[depth - 1]! % 2 === 0 && major !== 3) bad('map key is not a text string');
      switch (major) {
        case 0: case 1:
          if (ai === 31) bad('indefinite integer');
          argument(ai);
          break;
        case 2: case 3: {
          if (major === 2 && ++objects > budget) bad(`more than ${budget} objects in a frame of ${end} bytes`);
          const n = argument(ai);
          if (n >= 0) {
            if (n > end - pos) bad(`string of ${n} bytes with ${end - pos} left`);
            pos += n;
          } else {
            // chunks of definite strings of the same major type, then a break
            for (;;) {
              if (pos >= end) bad('truncated indefinite string');
              if (bytes[pos] === 0xff) { pos++; break; }
              const c = bytes[pos++]!;
              if (c >> 5 !== major || (c & 31) === 31) bad('bad chunk in an indefinite string');
              const len = argument(c & 31);
              if (len > end - pos) bad(`string chunk of ${len} bytes with ${end - pos} left`);
              pos += len;
            }
          }
          break;
        }
        case 4: case 5: {
          if (++objects > budget) bad(`more than ${budget} objects in a frame of ${end} bytes`);
          if (depth >= MAX_DEPTH) bad(`nested deeper than ${MAX_DEPTH}`);
          const n = argument(ai);
          const items = n < 0 ? -1 : major === 5 ? n * 2 : n;
          // every item takes at least one byte: a longer announcement cannot be honest
          if (items > end - pos) bad(`${major === 5 ? 'map' : 'array'} of ${n} entries with ${end - pos} bytes left`);
          if (items === 0) break;
          left[depth] = items;
          isMap[depth] = major === 5;
          index[depth] = 0;
          depth++;
          continue; // the container is not an item of its parent until it is complete
        }
        case 6:
          bad(`tagged value (tag ${argument(ai)}): the protocol uses no CBOR tags`);
          break;
        case 7:
          // false, true, null, undefined, and floats; no other simple values
          if (ai < 20 || ai === 24 || ai === 28 || ai === 29 || ai === 30 || ai === 31) bad(`unsupported simple value ${ai}`);
          if (ai === 25) pos += 2;
          else if (ai === 26) pos += 4;
          else if (ai === 27) pos += 8;
          if (pos > end) bad('truncated float');
          break;
      }
    }
    // one item done: count it against its container, closing the ones it completes
    for (;;) {
      if (depth === 0) {
        if (pos !== end) bad(`${end - pos} bytes after the item`);
        return;
      }
      index[depth - 1]!++;
      if (left[depth - 1] === -1) break;
      if (--left[depth - 1]! > 0) break;
      depth--;
    }
  }
}

/** How far into a frame the head before a trailing byte string is looked for: a chunk's is ~60 bytes. */
const MAX_HEAD = 256;

/**
 * Decodes a frame that arrived as several slices (see FrameReader.nextParts) without joining
 * them, when its last item is a byte string that runs to the frame's end (an artifact chunk):
 * the head before that string is decoded, checked as any frame is, with the string empty, and
 * the string's bytes are returned as slices of the parts. Since CBOR is read left to right, a
 * head that is one complete item ending at that empty string proves the frame is the same item
 * with the string's bytes in place. undefined when the frame is not of that shape: the caller
 * joins and decodes it whole (which also gives the error of a malformed one).
 */
export function splitTail(parts: Buffer[], total: number): { value: unknown; tail: Buffer[] } | undefined {
  const first = parts[0]!;
  const scan = Math.min(first.length, MAX_HEAD);
  for (let p = 0; p < scan; p++) {
    const ai = first[p]! - 0x40; // major type 2 with additional info ai
    const n = ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : -1;
    if (n < 0 || p + 1 + n > first.length) continue;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + first[p + 1 + i]!;
    const start = p + 1 + n;
    if (start + len !== total) continue;
    const head = Buffer.allocUnsafe(p + 1);
    first.copy(head, 0, 0, p);
    head[p] = 0x40; // the empty byte string
    let value: unknown;
    try {
      value = decodeValue(head);
    } catch {
      continue;
    }
    const tail: Buffer[] = [];
    let skip = start;
    for (const part of parts) {
      if (skip >= part.length) {
        skip -= part.length;
        continue;
      }
      tail.push(skip > 0 ? part.subarray(skip) : part);
      skip = 0;
    }
    return { value, tail };
  }
  return undefined;
}
