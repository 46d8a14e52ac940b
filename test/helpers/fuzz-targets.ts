// Property-based checks of everything that reads bytes from outside: the frame reader, the CBOR
// walk and message parser, the DER reader, the tar extractor. Arbitrary (and mutated valid)
// input never crashes them with anything but their own refusal, never hangs, never decodes into
// more than its budget, and valid values round-trip. Shared by the suite (a few hundred runs per
// property, seconds) and `bench fuzz` (many more).
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuilderError } from '../../src/common/errors.js';
import { BuilderWebFormatError, DerReader, INT63_MAX, INT63_MIN, TAG, integer, tlv } from '../../src/builder-web/der.js';
import { DecodeError, decodeValue, encodeValue, objectBudget } from '../../src/protocol/codec.js';
import { FrameError, FrameReader, encodeFrame } from '../../src/protocol/framing.js';
import { parseMessage } from '../../src/protocol/parse.js';
import { decodeOriginalState } from '../../src/server/import-original/state-file.js';
import { extractTar, tarOf, type TarEntry } from '../../src/worker/sandbox/tar-extract.js';

export interface FuzzTarget {
  name: string;
  /** runs the property `runs` times; throws the counterexample on failure */
  check(runs: number, seed?: number): Promise<void>;
}

const opts = (runs: number, seed?: number): fc.Parameters<unknown> => ({ numRuns: runs, ...(seed === undefined ? {} : { seed }) });
const bytes = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** Splits a buffer at arbitrary points, as a socket would deliver it. */
const splitAt = (buf: Buffer, cuts: number[]): Buffer[] => {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
};

/** A valid value with its bytes damaged: flips, cuts, insertions. */
const mutated = (valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> =>
  fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert')), { maxLength: 4 }))
    .map(([buf, edits]) => {
      let b = Buffer.from(buf);
      for (const [at, byte, op] of edits) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (op === 'flip' && b.length > 0) b[i] = byte;
        else if (op === 'cut') b = b.subarray(0, i);
        else b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
      }
      return b;
    });

/** Maps, arrays and byte strings in a decoded value: what the object budget counts. */
function objectsIn(v: unknown): number {
  if (v instanceof Uint8Array) return 1;
  if (Array.isArray(v)) return 1 + v.reduce((n: number, x) => n + objectsIn(x), 0);
  if (v !== null && typeof v === 'object') return 1 + Object.values(v).reduce((n: number, x) => n + objectsIn(x), 0);
  return 1 - 1;
}

// ---- valid protocol messages ----
const text = fc.string({ maxLength: 40 });
const int = fc.integer({ min: -(2 ** 31), max: 2 ** 31 });
const nat = fc.nat();
const buf = bytes(64);
const plain: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 3 }, int, text, fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(text.filter((k) => k !== '__proto__'), tie('value'), { maxKeys: 4 })),
})).value;
const validMessage: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ t: fc.constant('hello'), role: fc.constantFrom('client', 'worker'), version: nat, nonce: buf }),
  fc.record({ t: fc.constant('auth'), mac: buf }),
  fc.record({ t: fc.constant('req'), id: nat, op: fc.constant('schedule'), name: text, platform: text, script: buf }), // scripts are bytes (a text script arrives as its UTF-8 bytes)
  fc.record({ t: fc.constant('req'), id: nat, op: fc.constant('info') }),
  fc.record({ t: fc.constant('output'), uuid: text, seq: nat, lines: fc.array(fc.tuple(nat, buf), { maxLength: 20 }) }),
  fc.record({ t: fc.constant('line'), id: nat, uuid: text, ms: nat, data: buf }),
  fc.record({ t: fc.constant('end'), id: nat, uuid: text, result: fc.record({ kind: fc.constant('exited'), code: int }) }),
  fc.record({ t: fc.constant('res'), id: nat, ok: fc.constant(true), data: plain.filter((v) => v !== null) }), // null is "absent"
);
const validFrames = validMessage.map((m) => encodeValue(m));

/** What decoding untrusted bytes may throw: our refusals, nothing else. */
function decodeUntrusted(b: Buffer): void {
  let value: unknown;
  try {
    value = decodeValue(b);
  } catch (err) {
    if (err instanceof DecodeError) return;
    throw new Error(`decodeValue threw ${(err as Error).name}: ${(err as Error).message} for ${b.toString('hex').slice(0, 200)}`);
  }
  const n = objectsIn(value);
  if (n > objectBudget(b.length)) throw new Error(`${b.length} bytes decoded into ${n} objects, budget ${objectBudget(b.length)}`);
  try {
    parseMessage(value);
  } catch (err) {
    if (!(err instanceof BuilderError)) throw err;
  }
}

// ---- tar ----
const tarName = fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,2}$/);
const tarEntries: fc.Arbitrary<TarEntry[]> = fc.uniqueArray(fc.record({ name: tarName, data: bytes(2000) }), { selector: (e) => e.name, maxLength: 6 })
  // a name that is also another's directory cannot be both: keep the archive extractable
  .filter((es) => es.every((a) => es.every((b) => !b.name.startsWith(`${a.name}/`))))
  .map((es) => es.map((e) => ({ name: e.name, type: 'file' as const, mode: 0o644, data: e.data })));

async function* pieces(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 700) yield b.subarray(i, i + 700);
}

async function extractUntrusted(b: Buffer): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'builder-fuzz-tar-'));
  const dest = join(root, 'dest');
  mkdirSync(dest);
  try {
    await extractTar(pieces(b), dest).catch((err: unknown) => {
      if (!(err instanceof Error) || err instanceof TypeError || err instanceof RangeError) throw err;
    });
    const outside = readdirSync(root);
    if (outside.length !== 1) throw new Error(`extraction wrote outside its directory: ${outside.join(', ')}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// ---- DER ----
/** Walks every element, entering constructed ones; only format errors may come out. */
function walkDer(b: Buffer): void {
  const walk = (r: DerReader, depth: number): void => {
    while (!r.atEnd()) {
      const el = r.next('an element');
      if (el.tag & 0x20 && depth < 64) walk(r.enter(el), depth + 1);
      else if (el.tag === TAG.INTEGER) new DerReader(r.buf, el.at, el.end).integer('an integer');
    }
  };
  try {
    walk(DerReader.of(b), 0);
  } catch (err) {
    if (!(err instanceof BuilderWebFormatError)) throw err;
  }
  try {
    decodeOriginalState(b);
  } catch (err) {
    if (!(err instanceof BuilderError)) throw err;
  }
}

export const FUZZ_TARGETS: FuzzTarget[] = [
  {
    name: 'frame reader: arbitrary chunks give frames within the limit or a FrameError',
    async check(runs, seed) {
      fc.assert(fc.property(fc.array(bytes(300), { maxLength: 8 }), fc.integer({ min: 1, max: 512 }), (chunks, max) => {
        const reader = new FrameReader(max);
        try {
          for (const c of chunks) for (const f of reader.push(c)) if (f.length === 0 || f.length > max) throw new Error(`frame of ${f.length} with limit ${max}`);
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
        }
      }), opts(runs, seed));
    },
  },
  {
    name: 'frame reader: frames split anywhere come out whole and in order',
    async check(runs, seed) {
      // payloads that start as a message does (a small map), whatever follows
      const payload = bytes(200).map((b) => Buffer.concat([Buffer.from([0xa0 | (b.length % 24)]), b]));
      fc.assert(fc.property(fc.array(payload, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 12 }), (payloads, cuts) => {
        const reader = new FrameReader(256);
        const got: Buffer[] = [];
        for (const piece of splitAt(Buffer.concat(payloads.map(encodeFrame)), cuts)) got.push(...reader.push(piece).map((f) => Buffer.from(f)));
        if (got.length !== payloads.length || got.some((g, i) => !g.equals(payloads[i]!))) throw new Error('frames changed');
      }), opts(runs, seed));
    },
  },
  {
    name: 'message parser: arbitrary and damaged frames are refused with a reason, within the object budget',
    async check(runs, seed) {
      fc.assert(fc.property(fc.oneof(bytes(400), mutated(validFrames)), (b) => decodeUntrusted(b)), opts(runs, seed));
    },
  },
  {
    name: 'message parser: valid messages round-trip',
    async check(runs, seed) {
      fc.assert(fc.property(validMessage, (m) => {
        const back = parseMessage(decodeValue(encodeValue(m)));
        const again = encodeValue(back);
        if (!again.equals(encodeValue(m))) throw new Error(`changed: ${JSON.stringify(m)} -> ${JSON.stringify(back)}`);
      }), opts(runs, seed));
    },
  },
  {
    name: 'DER reader: arbitrary and damaged input is refused with a format error',
    async check(runs, seed) {
      const validDer = fc.array(fc.oneof(
        fc.bigInt({ min: INT63_MIN, max: INT63_MAX }).map((v) => integer(v)),
        bytes(200).map((b) => tlv(TAG.UTF8String, b)),
      ), { maxLength: 5 }).map((els) => tlv(TAG.SEQUENCE, tlv(TAG.explicit(1), ...els)));
      fc.assert(fc.property(fc.oneof(bytes(300), mutated(validDer)), (b) => walkDer(b)), opts(runs, seed));
    },
  },
  {
    name: 'DER reader: integers and strings round-trip',
    async check(runs, seed) {
      fc.assert(fc.property(fc.bigInt({ min: INT63_MIN, max: INT63_MAX }), bytes(300), (v, s) => {
        const r = DerReader.of(Buffer.concat([integer(v), tlv(TAG.UTF8String, s)]));
        if (r.integer('v') !== v) throw new Error(`integer ${v} changed`);
        if (!r.utf8('s').equals(s)) throw new Error('string changed');
        r.expectEnd('the test');
      }), opts(runs, seed));
    },
  },
  {
    name: 'tar extractor: arbitrary and damaged archives end (refused or extracted) inside their directory',
    async check(runs, seed) {
      await fc.assert(fc.asyncProperty(fc.oneof(bytes(3000), mutated(tarEntries.map((es) => tarOf(es)))), (b) => extractUntrusted(b)), opts(runs, seed));
    },
  },
  {
    name: 'tar extractor: files round-trip',
    async check(runs, seed) {
      await fc.assert(fc.asyncProperty(tarEntries, async (entries) => {
        const dest = mkdtempSync(join(tmpdir(), 'builder-fuzz-tar-'));
        try {
          const r = await extractTar(pieces(tarOf(entries)), dest);
          if (r.refusals.length > 0 || r.files !== entries.length) throw new Error(`refused ${JSON.stringify(r)}`);
          for (const e of entries) if (!readFileSync(join(dest, e.name)).equals(e.data!)) throw new Error(`${e.name} changed`);
        } finally {
          rmSync(dest, { recursive: true, force: true });
        }
      }), opts(runs, seed));
    },
  },
];
