// builder-web's upload body: the "full" exec record of upstream robur-coop/builder, DER encoded.
// The layout, and every rule the golden vectors check, is in test/fixtures/builder-web-vectors/
// README.md. In short:
//
//   [0] EXPLICIT SEQUENCE {
//     job SEQUENCE { name UTF8String, script UTF8String, files SEQUENCE OF {path, data} (always
//                    empty when we write), platform UTF8String OPTIONAL (always written) }
//     uuid UTF8String (16 raw bytes), console SEQUENCE OF { INTEGER ns-since-start, UTF8String },
//     timestamps SEQUENCE { started, finished } (GeneralizedTime written; UTCTime also read),
//     result CHOICE { [0] exited INT, [1] signalled INT, [2] stopped INT, [3] msg UTF8String },
//     artifacts SEQUENCE OF SEQUENCE { UTF8String path, UTF8String data } }
//
// Every "UTF8String" carries arbitrary bytes (upstream never validates), so all text fields are
// Buffers here: invalid UTF-8 in a console line or a file name must survive byte for byte.
import { BuilderWebFormatError, DerReader, TAG, elementSize, header, integer, tlv, type Element } from './der.js';

export { BuilderWebFormatError } from './der.js';

/** What our side writes: strings are taken as UTF-8, bytes as they are. */
export type Bytes = Uint8Array | string;

export type BuildResult =
  | { kind: 'exited' | 'signalled' | 'stopped'; value: number }
  | { kind: 'msg'; value: Buffer };

export type BuildResultInput =
  | { kind: 'exited' | 'signalled' | 'stopped'; value: number }
  | { kind: 'msg'; value: Bytes };

export interface ExecRecord {
  job: { name: Buffer; script: Buffer; platform: Buffer };
  /** 8-4-4-4-12, lowercase hex. */
  uuid: string;
  /** [nanoseconds since `started`, line without newline]; upstream stores newest first. */
  console: Array<[bigint, Buffer]>;
  /** Millisecond precision, like the wire format we write. */
  started: Date;
  finished: Date;
  result: BuildResult;
  /** [path relative to the build directory, file content]. */
  artifacts: Array<[Buffer, Buffer]>;
}

export interface ExecRecordInput {
  job: { name: Bytes; script: Bytes; platform: Bytes };
  uuid: string;
  console: ReadonlyArray<readonly [bigint, Bytes]>;
  started: Date;
  finished: Date;
  result: BuildResultInput;
  artifacts: ReadonlyArray<readonly [Bytes, Uint8Array]>;
}

/** Upstream's decoder fills this in when the optional platform is absent. */
export const NO_PLATFORM = 'no-platform';

const RESULT_TAGS = { exited: 0, signalled: 1, stopped: 2, msg: 3 } as const;

export const toBytes = (b: Bytes): Buffer =>
  typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

// ---- encoding ------------------------------------------------------------------------------

/** The record as one buffer. For large artifacts use stream-encode.ts, which writes the same bytes. */
export function encodeExec(r: ExecRecordInput): Buffer {
  const artifacts = r.artifacts.map(([path, data]) => Buffer.concat([artifactHeader(path, data.length), data]));
  return Buffer.concat([...recordHeaders(r, artifacts.reduce((n, a) => n + a.length, 0)), ...artifacts]);
}

/**
 * Everything that comes before the first artifact: the outer [0] and SEQUENCE headers, the fields
 * up to the result, and the artifacts SEQUENCE header. The lengths need only the total size of the
 * artifact elements, which is what lets the streaming encoder write them without reading them.
 */
export function recordHeaders(r: ExecRecordInput, artifactsLength: number): Buffer[] {
  const fields = Buffer.concat([encodeJob(r.job), encodeUuid(r.uuid), encodeConsole(r.console),
    tlv(TAG.SEQUENCE, encodeTime(r.started, 'started'), encodeTime(r.finished, 'finished')), encodeResult(r.result)]);
  const seqLength = fields.length + elementSize(artifactsLength);
  return [header(TAG.explicit(0), elementSize(seqLength)), header(TAG.SEQUENCE, seqLength), fields,
    header(TAG.SEQUENCE, artifactsLength)];
}

/** An artifact element up to (not including) its `size` content bytes. */
export function artifactHeader(path: Bytes, size: number): Buffer {
  const p = toBytes(path);
  checkPath(p, 'artifact path');
  const pathEl = tlv(TAG.UTF8String, p);
  const dataHead = header(TAG.UTF8String, size);
  return Buffer.concat([header(TAG.SEQUENCE, pathEl.length + dataHead.length + size), pathEl, dataHead]);
}

function encodeJob(job: ExecRecordInput['job']): Buffer {
  return tlv(TAG.SEQUENCE, tlv(TAG.UTF8String, toBytes(job.name)), tlv(TAG.UTF8String, toBytes(job.script)),
    tlv(TAG.SEQUENCE), tlv(TAG.UTF8String, toBytes(job.platform)));
}

function encodeUuid(uuid: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) {
    throw new BuilderWebFormatError(`expected a UUID like 8-4-4-4-12 hex digits, got ${JSON.stringify(uuid)}`);
  }
  return tlv(TAG.UTF8String, Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

function encodeConsole(lines: ExecRecordInput['console']): Buffer {
  return tlv(TAG.SEQUENCE, ...lines.map(([delta, line]) => tlv(TAG.SEQUENCE, integer(delta), tlv(TAG.UTF8String, toBytes(line)))));
}

function encodeResult(res: BuildResultInput): Buffer {
  if (res.kind === 'msg') return tlv(TAG.explicit(RESULT_TAGS.msg), tlv(TAG.UTF8String, toBytes(res.value)));
  if (!Number.isSafeInteger(res.value)) throw new BuilderWebFormatError(`expected an integer ${res.kind} value, got ${res.value}`);
  return tlv(TAG.explicit(RESULT_TAGS[res.kind]), integer(BigInt(res.value)));
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * GeneralizedTime in UTC, `YYYYMMDDHHMMSS[.fff]Z`: the fraction only when the milliseconds are
 * non-zero, then always three digits (`.500`), exactly what upstream writes. A Date has no
 * sub-millisecond part, so upstream's `.000` case (a sub-ms fraction) cannot arise from us.
 */
export function formatTime(d: Date, what = 'time'): string {
  const t = d.getTime();
  if (Number.isNaN(t)) throw new BuilderWebFormatError(`expected a valid ${what}, got an invalid Date`);
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new BuilderWebFormatError(`expected ${what} within years 0000-9999, got ${y}`);
  const ms = d.getUTCMilliseconds();
  return `${pad(y, 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}` +
    `${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}${ms === 0 ? '' : `.${pad(ms, 3)}`}Z`;
}

const encodeTime = (d: Date, what: string): Buffer => tlv(TAG.GeneralizedTime, Buffer.from(formatTime(d, what), 'latin1'));

/** Upstream's decoder (Fpath.of_string) refuses these, so writing them would only earn a 500. */
function checkPath(p: Buffer, what: string, at?: number): void {
  if (p.length === 0) throw new BuilderWebFormatError(`expected a non-empty ${what}, got an empty one`, at);
  if (p.includes(0)) throw new BuilderWebFormatError(`expected a ${what} without NUL bytes, got ${JSON.stringify(p.toString('latin1'))}`, at);
}

// ---- decoding ------------------------------------------------------------------------------

/**
 * Decodes and checks a whole upload body. The Buffers in the result are views into `b`, so large
 * artifacts are not copied; copy them if `b` is going to be reused.
 */
export function decodeExec(b: Uint8Array): ExecRecord {
  const top = DerReader.of(b);
  const tag = top.peekTag();
  if (tag === TAG.explicit(1)) {
    throw new BuilderWebFormatError('expected an exec record ([0] EXPLICIT), got the [1] EXPLICIT NULL alternative, which upstream never produces and cannot decode', 0);
  }
  const outer = top.expect(TAG.explicit(0), 'the exec record [0] EXPLICIT');
  if (outer.end < b.length) {
    throw new BuilderWebFormatError(`expected the end of the upload after the exec record, got ${b.length - outer.end} trailing bytes`, outer.end);
  }
  const wrapper = top.enter(outer);
  const seq = wrapper.enter(wrapper.expect(TAG.SEQUENCE, 'the exec SEQUENCE'));
  wrapper.expectEnd('the [0] EXPLICIT wrapper');

  const job = decodeJob(seq);
  const uuid = decodeUuid(seq);
  const lines = decodeConsole(seq);
  const times = seq.enter(seq.expect(TAG.SEQUENCE, 'the timestamps SEQUENCE'));
  const started = decodeTime(times, 'started');
  const finished = decodeTime(times, 'finished');
  times.expectEnd('the timestamps SEQUENCE');
  const result = decodeResult(seq);
  const artifacts = decodeData(seq, 'artifacts');
  seq.expectEnd('the exec SEQUENCE');
  return { job, uuid, console: lines, started, finished, result, artifacts };
}

function decodeJob(seq: DerReader): ExecRecord['job'] {
  const r = seq.enter(seq.expect(TAG.SEQUENCE, 'the job SEQUENCE'));
  const name = r.utf8('the job name');
  const script = r.utf8('the job script');
  decodeData(r, 'job files'); // checked like upstream, then dropped like upstream
  const platform = r.atEnd() ? Buffer.from(NO_PLATFORM) : r.utf8('the job platform');
  r.expectEnd('the job SEQUENCE');
  return { name, script, platform };
}

function decodeUuid(seq: DerReader): string {
  const el = seq.expect(TAG.UTF8String, 'the uuid');
  // Upstream takes the first 16 bytes and ignores the rest.
  if (el.end - el.start < 16) throw new BuilderWebFormatError(`expected at least 16 uuid bytes, got ${el.end - el.start}`, el.at);
  const h = seq.bytes(el).subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function decodeConsole(seq: DerReader): ExecRecord['console'] {
  const r = seq.enter(seq.expect(TAG.SEQUENCE, 'the console SEQUENCE OF'));
  const lines: ExecRecord['console'] = [];
  while (!r.atEnd()) {
    const item = r.enter(r.expect(TAG.SEQUENCE, `console line ${lines.length}`));
    const delta = item.integer(`the delta of console line ${lines.length}`);
    const text = item.utf8(`the text of console line ${lines.length}`);
    item.expectEnd(`console line ${lines.length}`);
    lines.push([delta, text]);
  }
  return lines;
}

/** SEQUENCE OF SEQUENCE { path, data }: the artifacts, and the job's (discarded) files. */
function decodeData(seq: DerReader, what: string): Array<[Buffer, Buffer]> {
  const r = seq.enter(seq.expect(TAG.SEQUENCE, `the ${what} SEQUENCE OF`));
  const out: Array<[Buffer, Buffer]> = [];
  while (!r.atEnd()) {
    const item = r.enter(r.expect(TAG.SEQUENCE, `${what} entry ${out.length}`));
    const pathEl = item.expect(TAG.UTF8String, `the path of ${what} entry ${out.length}`);
    const path = item.bytes(pathEl);
    checkPath(path, `path in ${what} entry ${out.length}`, pathEl.at);
    const data = item.utf8(`the data of ${what} entry ${out.length}`);
    item.expectEnd(`${what} entry ${out.length}`);
    out.push([collapseSlashes(path), data]);
  }
  return out;
}

/** Fpath.of_string collapses repeated separators, so builder-web sees `a//b` as `a/b`. */
function collapseSlashes(p: Buffer): Buffer {
  if (!p.includes('//')) return p;
  return Buffer.from(p.filter((byte, i) => !(byte === 0x2f && p[i - 1] === 0x2f)));
}

function decodeResult(seq: DerReader): BuildResult {
  const at = seq.offset;
  const el = seq.next('the result');
  const inner = seq.enter(el);
  let result: BuildResult;
  switch (el.tag) {
    case TAG.explicit(0):
    case TAG.explicit(1):
    case TAG.explicit(2): {
      const kind = (['exited', 'signalled', 'stopped'] as const)[el.tag & 0x1f]!;
      const v = inner.integer(`the ${kind} value`);
      if (v < BigInt(Number.MIN_SAFE_INTEGER) || v > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new BuilderWebFormatError(`expected a ${kind} value within ±2^53, got ${v}`, el.start);
      }
      result = { kind, value: Number(v) };
      break;
    }
    case TAG.explicit(3):
      result = { kind: 'msg', value: inner.utf8('the result message') };
      break;
    default:
      throw new BuilderWebFormatError(`expected the result as [0]..[3] EXPLICIT (0xa0..0xa3), got tag 0x${el.tag.toString(16).padStart(2, '0')}`, at);
  }
  inner.expectEnd('the result');
  return result;
}

// ---- lenient time reading ------------------------------------------------------------------

// Upstream's reader (asn1-combinators 0.2.6) is lenient, and builder-web accepts what it accepts:
// no zone means UTC, ±hhmm offsets, minutes and seconds may be missing, second 60 rolls over, and
// a fraction of 1-3 digits is read as a count of milliseconds (".5" is 5 ms, not 500). A comma
// fraction, more than 3 fraction digits, or an out-of-range field is an error.
const GEN_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{4})?$/;
const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(?:(\d{2})(\d{2})?)?(Z|[+-]\d{4})?$/;

function decodeTime(r: DerReader, what: string): Date {
  const tag = r.peekTag();
  const el: Element = tag === TAG.UTCTime ? r.next(what) : r.expect(TAG.GeneralizedTime, `${what} (GeneralizedTime or UTCTime)`);
  const text = r.bytes(el).toString('latin1');
  const d = parseTime(text, el.tag === TAG.UTCTime);
  if (d === undefined) {
    const kind = el.tag === TAG.UTCTime ? 'UTCTime' : 'GeneralizedTime';
    throw new BuilderWebFormatError(`expected ${what} as a valid ${kind}, got ${JSON.stringify(text)}`, el.start);
  }
  return d;
}

/** Parses a GeneralizedTime (or with `utc`, a UTCTime) string; undefined when malformed. */
export function parseTime(text: string, utc = false): Date | undefined {
  let year: number, fields: Array<string | undefined>, zone: string | undefined;
  if (utc) {
    const m = UTC_TIME.exec(text);
    if (!m) return undefined;
    const yy = Number(m[1]);
    // asn1-combinators 0.2.6 (Debian's): YY > 50 is 19YY. (0.3.x uses >= 50.)
    year = yy > 50 ? 1900 + yy : 2000 + yy;
    fields = [m[2], m[3], m[4], m[5], m[6], undefined];
    zone = m[7];
  } else {
    const m = GEN_TIME.exec(text);
    if (!m) return undefined;
    year = Number(m[1]);
    fields = [m[2], m[3], m[4], m[5], m[6], m[7]];
    zone = m[8];
  }
  const [month, day, hour, minute, second, millis] = fields.map((f) => (f === undefined ? 0 : Number(f))) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  let offsetMin = 0;
  if (zone !== undefined && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(3, 5));
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day); // not Date.UTC: that maps years 0-99 to 19xx
  d.setUTCHours(hour, minute - offsetMin, second, millis); // overflowing minutes/second 60 roll over
  return d;
}

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}
