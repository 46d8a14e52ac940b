// builder-web's exec record: the golden vectors (copied verbatim from the upstream oracle into
// test/fixtures/builder-web-vectors/) decode to their JSON and re-encode byte for byte; the
// strictness rules of their README reject mutated vectors; the streaming encoder writes the same
// bytes as the buffered one, also for a 50 MB file it never holds whole.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuilderWebFormatError, decodeExec, encodeExec, formatTime, parseTime, type ExecRecord, type ExecRecordInput } from '../../src/builder-web/format.js';
import { execFromJson, execToJson, type ExecJson } from '../../src/builder-web/json-form.js';
import { streamExec, type StreamArtifact } from '../../src/builder-web/stream-encode.js';
import { integerContent } from '../../src/builder-web/der.js';

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const vectorDir = join(root, 'test', 'fixtures', 'builder-web-vectors');
const names = readdirSync(vectorDir).filter((f) => f.endsWith('.full')).map((f) => f.slice(0, -5)).sort();
const full = (name: string): Buffer => readFileSync(join(vectorDir, `${name}.full`));
const json = (name: string): ExecJson => JSON.parse(readFileSync(join(vectorDir, `${name}.json`), 'utf8')) as ExecJson;

/** Expects decodeExec to fail with our error; returns the message for further checks. */
function rejects(bytes: Uint8Array, pattern: RegExp): string {
  try {
    decodeExec(bytes);
  } catch (err) {
    assert.instance(err, BuilderWebFormatError);
    const msg = (err as Error).message;
    assert.match(msg, pattern);
    assert.match(msg, /at byte \d+/, `message says where: ${msg}`);
    return msg;
  }
  assert.unreachable(`decoded although it should fail with ${pattern}`);
  return '';
}

test('every vector has its JSON, and all eight documented vectors are there', () => {
  assert.equal(names, ['empty-console', 'exited0-artifacts', 'large-artifact', 'msg-timeout', 'raw-bytes-console',
    'server-produced', 'signalled-noartifacts', 'unicode']);
  for (const n of names) assert.ok(statSync(join(vectorDir, `${n}.json`)).isFile(), n);
});

for (const name of names) {
  test(`${name}: decodes to its JSON, field by field`, () => {
    const got = execToJson(decodeExec(full(name)));
    const want = json(name);
    assert.equal(got.job, want.job, 'job');
    assert.is(got.uuid, want.uuid, 'uuid');
    assert.equal(got.console, want.console, 'console');
    assert.is(got.started, want.started, 'started');
    assert.is(got.finished, want.finished, 'finished');
    assert.equal(got.result, want.result, 'result');
    assert.is(got.artifacts.length, want.artifacts.length, 'artifact count');
    got.artifacts.forEach((a, i) => assert.equal(a, want.artifacts[i], `artifact ${i}`));
    assert.equal(got, want);
  });

  test(`${name}: encode(JSON) reproduces the bytes, and so does encode(decode(bytes))`, () => {
    const bytes = full(name);
    assert.ok(encodeExec(execFromJson(json(name))).equals(bytes), 'from JSON');
    assert.ok(encodeExec(decodeExec(bytes)).equals(bytes), 'round trip');
  });

  test(`${name}: the streaming encoder writes the same bytes and announces the right length`, async () => {
    const rec = execFromJson(json(name));
    const { length, body } = streamExec({ ...rec, artifacts: rec.artifacts.map(([path, data]) => memoryArtifact(path, data, 1000)) });
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    const out = Buffer.concat(chunks);
    assert.is(length, out.length);
    assert.ok(out.equals(full(name)));
  });
}

test('console lines keep their stored order (newest first in real server output)', () => {
  const deltas = decodeExec(full('server-produced')).console.map(([d]) => d);
  assert.equal(deltas, [...deltas].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)));
  const timeout = decodeExec(full('msg-timeout'));
  assert.is(timeout.console[0]![0], 4939256500204n, 'ns deltas beyond 2^32 stay exact');
});

test('raw bytes survive: invalid UTF-8 console line, NUL and 0xFF in artifact data', () => {
  const r = decodeExec(full('raw-bytes-console'));
  assert.ok(r.console[0]![1].equals(Buffer.from('fffe206c6174696e313a20636166e9', 'hex')));
  assert.ok(r.artifacts[0]![1].equals(Buffer.from([0xff, 0x00, 0xfe])));
});

// ---- strictness: mutations of empty-console (88 bytes, all lengths short-form) ----------------
// a0 56 | 30 54 | 30 13 (0c 05 "quiet") (0c 00) (30 00) (0c 06 "alpine") | 0c 10 <uuid> | 30 00 |
// 30 22 (18 0f ...) (18 0f ...) | a2 03 02 01 13 | 30 00
const E = { outer: 1, seq: 3, job: 5, name: 6, files: 15, platform: 17, uuid: 25, console: 43, times: 45, started: 47, result: 81, resultLen: 82, artifacts: 86 };

/** Replaces bytes [at, at+remove) with `insert` and fixes the enclosing short-form lengths. */
function splice(at: number, remove: number, insert: number[] | Buffer, lengthsAt: number[]): Buffer {
  const b = full('empty-console');
  const out = Buffer.concat([b.subarray(0, at), Buffer.from(insert), b.subarray(at + remove)]);
  const delta = Buffer.from(insert).length - remove;
  for (const l of lengthsAt) out[l] = b[l]! + delta;
  return out;
}
const inSeq = [E.outer, E.seq];
const inJob = [E.outer, E.seq, E.job];
const inResult = [E.outer, E.seq, E.resultLen];
const withResultInt = (content: number[]): Buffer => splice(E.result + 2, 3, [0x02, content.length, ...content], inResult);

test('the unmutated base decodes', () => {
  const r = decodeExec(full('empty-console'));
  assert.equal(r.result, { kind: 'stopped', value: 19 });
});

test('trailing bytes after the record are an error, pointing at them', () => {
  const msg = rejects(Buffer.concat([full('empty-console'), Buffer.from([0])]), /trailing bytes/);
  assert.match(msg, /at byte 88/);
});

test('indefinite length is an error', () => {
  const b = full('empty-console');
  rejects(Buffer.concat([Buffer.from([0xa0, 0x80]), b.subarray(2), Buffer.from([0, 0])]), /indefinite length/);
});

test('long-form length for a short value is an error (also with a leading 00)', () => {
  rejects(splice(E.name, 2, [0x0c, 0x81, 0x05], inJob), /short-form length.*got long form/);
  rejects(splice(E.name, 2, [0x0c, 0x82, 0x00, 0x05], inJob), /minimal length/);
});

test('a length beyond the enclosing element is an error', () => {
  const b = Buffer.from(full('empty-console'));
  b[E.name + 1] = 0x7f;
  rejects(b, /claims 127 bytes/);
});

test('INTEGER with a redundant leading 00 or FF is an error; negative INTEGERs are fine', () => {
  rejects(withResultInt([0x00, 0x13]), /redundant leading 0x00/);
  rejects(withResultInt([0xff, 0x80]), /redundant leading 0xff/);
  assert.equal(decodeExec(withResultInt([0xff])).result, { kind: 'stopped', value: -1 });
  assert.equal(decodeExec(withResultInt([0x00, 0x80])).result, { kind: 'stopped', value: 128 });
  assert.equal(decodeExec(withResultInt([0xff, 0x7f])).result, { kind: 'stopped', value: -129 });
  rejects(withResultInt([]), /empty INTEGER/);
});

test('INTEGERs wider than 63-bit signed are an error', () => {
  rejects(withResultInt([0x01, 0, 0, 0, 0, 0, 0, 0, 0]), /63-bit/);
  rejects(withResultInt([0x40, 0, 0, 0, 0, 0, 0, 0]), /63-bit/); // 2^62
  rejects(withResultInt([0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /63-bit/); // -2^62 - 1
  // In range, but beyond a JS number's exact range: refused for the result, kept exact for deltas.
  rejects(withResultInt([0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /within ±2\^53/);
  const rec = { ...decodeExec(full('empty-console')), console: [[(1n << 62n) - 1n, Buffer.from('max')], [-(1n << 62n), Buffer.from('min')], [-1n, Buffer.from('neg')]] as Array<[bigint, Buffer]> };
  assert.equal(decodeExec(encodeExec(rec)).console.map(([d]) => d), [(1n << 62n) - 1n, -(1n << 62n), -1n]);
  assert.throws(() => encodeExec({ ...rec, console: [[1n << 62n, 'too big']] }), /63-bit/);
});

test('INTEGER encoding is minimal two\'s complement', () => {
  const cases: Array<[bigint, string]> = [[0n, '00'], [127n, '7f'], [128n, '0080'], [255n, '00ff'], [256n, '0100'],
    [-1n, 'ff'], [-128n, '80'], [-129n, 'ff7f'], [4939256500204n, '047e02a10fec']];
  for (const [v, hex] of cases) assert.is(integerContent(v).toString('hex'), hex, String(v));
});

test('constructed strings are an error', () => {
  rejects(splice(E.name, 7, [0x2c, 0x07, 0x0c, 0x05, ...Buffer.from('quiet')], [...inJob]), /constructed UTF8String/);
});

test('PrintableString or OCTET STRING in place of UTF8String is an error', () => {
  for (const [tag, name] of [[0x13, 'PrintableString'], [0x04, 'OCTET STRING']] as const) {
    const b = Buffer.from(full('empty-console'));
    b[E.name] = tag;
    rejects(b, new RegExp(`job name as UTF8String.*got ${name}`));
  }
});

test('extra SEQUENCE elements are an error', () => {
  rejects(splice(E.artifacts + 2, 0, [0x05, 0x00], inSeq), /end of the exec SEQUENCE.*NULL/);
  rejects(splice(E.uuid, 0, [0x0c, 0x00], inJob), /end of the job SEQUENCE/);
  rejects(splice(E.result + 5, 0, [0x05, 0x00], [...inResult]), /end of the result/);
  const b = full('empty-console');
  rejects(splice(E.started, 0, b.subarray(E.started, E.started + 17), [E.outer, E.seq, E.times + 1]), /end of the timestamps/);
  rejects(Buffer.concat([Buffer.from([0xa0, 0x58]), b.subarray(2), Buffer.from([0x05, 0x00])]), /end of the \[0\] EXPLICIT wrapper/);
});

test('a missing element is an error saying what was expected', () => {
  rejects(splice(E.artifacts, 2, [], inSeq), /expected the artifacts SEQUENCE OF, got end of data/);
});

test('the [1] EXPLICIT NULL alternative is an error', () => {
  rejects(Buffer.from([0xa1, 0x02, 0x05, 0x00]), /\[1\] EXPLICIT NULL/);
});

test('other outer tags, empty input and unknown result tags are errors', () => {
  rejects(Buffer.from([0x30, 0x00]), /exec record \[0\] EXPLICIT.*SEQUENCE/);
  rejects(Buffer.alloc(0), /end of data/);
  const b = Buffer.from(full('empty-console'));
  b[E.result] = 0xa4;
  rejects(b, /result as \[0\]\.\.\[3\]/);
  b[E.result] = 0x82;
  rejects(b, /result as \[0\]\.\.\[3\]/);
});

test('uuid: fewer than 16 bytes is an error, more are accepted and ignored', () => {
  const b = full('empty-console');
  const uuid = b.subarray(E.uuid + 2, E.uuid + 18);
  rejects(splice(E.uuid, 18, [0x0c, 15, ...uuid.subarray(0, 15)], inSeq), /at least 16 uuid bytes, got 15/);
  const longer = decodeExec(splice(E.uuid, 18, [0x0c, 17, ...uuid, 0x42], inSeq));
  assert.is(longer.uuid, 'ffffffff-ffff-4fff-bfff-ffffffffffff');
});

test('missing platform decodes as "no-platform"', () => {
  const r = decodeExec(splice(E.platform, 8, [], inJob));
  assert.is(r.job.platform.toString(), 'no-platform');
});

/** An artifacts SEQUENCE OF holding one entry with this path and data. */
function withArtifact(path: Buffer, data = Buffer.from('x')): Buffer {
  const entry = [0x0c, path.length, ...path, 0x0c, data.length, ...data];
  return splice(E.artifacts, 2, [0x30, entry.length + 2, 0x30, entry.length, ...entry], inSeq);
}

test('artifact paths: empty or with NUL is an error; repeated slashes collapse; .. and / accepted', () => {
  rejects(withArtifact(Buffer.alloc(0)), /non-empty path in artifacts entry 0/);
  rejects(withArtifact(Buffer.from('bin/a\0b')), /without NUL/);
  assert.is(decodeExec(withArtifact(Buffer.from('bin//x.hvt'))).artifacts[0]![0].toString(), 'bin/x.hvt');
  assert.is(decodeExec(withArtifact(Buffer.from('../up'))).artifacts[0]![0].toString(), '../up');
  assert.is(decodeExec(withArtifact(Buffer.from('/abs'))).artifacts[0]![0].toString(), '/abs');
  const raw = Buffer.from([0x62, 0xff, 0xfe]);
  assert.ok(decodeExec(withArtifact(raw)).artifacts[0]![0].equals(raw), 'non-UTF-8 path bytes survive');
});

test('job files are parsed (paths checked) and then dropped', () => {
  const entry = [0x0c, 0x01, 0x66, 0x0c, 0x01, 0x78];
  const r = decodeExec(splice(E.files, 2, [0x30, 8, 0x30, 6, ...entry], inJob));
  assert.is(r.job.platform.toString(), 'alpine');
  rejects(splice(E.files, 2, [0x30, 7, 0x30, 5, 0x0c, 0x00, 0x0c, 0x01, 0x78], inJob), /non-empty path in job files entry 0/);
});

test('the encoder refuses what builder-web would refuse', () => {
  const base = execFromJson(json('empty-console'));
  assert.throws(() => encodeExec({ ...base, artifacts: [['', Buffer.from('x')]] }), /non-empty artifact path/);
  assert.throws(() => encodeExec({ ...base, artifacts: [['a\0b', Buffer.from('x')]] }), /without NUL/);
  assert.throws(() => encodeExec({ ...base, uuid: 'not-a-uuid' }), /UUID/);
  assert.throws(() => encodeExec({ ...base, started: new Date(NaN) }), /invalid Date/);
  assert.throws(() => encodeExec({ ...base, started: new Date(Date.UTC(10000, 0, 1)) }), /0000-9999/);
  assert.throws(() => encodeExec({ ...base, result: { kind: 'exited', value: 1.5 } }), /integer exited value/);
});

test('strings and bytes are interchangeable on input; upper-case uuids are written the same', () => {
  const rec = execFromJson(json('msg-timeout'));
  const input: ExecRecordInput = {
    ...rec,
    uuid: rec.uuid.toUpperCase(),
    job: { name: 'slow-build', script: rec.job.script.toString(), platform: 'debian-12' },
    result: { kind: 'msg', value: 'timeout' },
    console: rec.console.map(([d, l]) => [d, l.toString()] as const),
  };
  assert.ok(encodeExec(input).equals(full('msg-timeout')));
});

// ---- times ---------------------------------------------------------------------------------

test('times are written as GeneralizedTime with .fff only when non-zero, truncated, trailing zeros kept', () => {
  const cases: Array<[string, string]> = [
    ['2020-01-01T00:00:00.000Z', '20200101000000Z'],
    ['2024-02-29T12:00:00.500Z', '20240229120000.500Z'],
    ['2024-02-29T12:00:00.120Z', '20240229120000.120Z'],
    ['2024-06-01T08:00:00.001Z', '20240601080000.001Z'],
    ['0099-12-31T23:59:59.999Z', '00991231235959.999Z'],
  ];
  for (const [iso, der] of cases) assert.is(formatTime(new Date(iso)), der, iso);
});

/** empty-console with `started` replaced by a time element of this tag and text. */
function withStarted(tag: number, text: string): Buffer {
  const t = Buffer.from(text, 'latin1');
  return splice(E.started, 17, [tag, t.length, ...t], [E.outer, E.seq, E.times + 1]);
}
const GEN = 0x18;
const UTC = 0x17;

test('time decoding is lenient the way upstream is', () => {
  const cases: Array<[number, string, string]> = [
    [GEN, '20200101000000Z', '2020-01-01T00:00:00.000Z'],
    [GEN, '20200101000000', '2020-01-01T00:00:00.000Z'],
    [GEN, '20200101013000+0130', '2020-01-01T00:00:00.000Z'],
    [GEN, '20191231230000-0100', '2020-01-01T00:00:00.000Z'],
    [GEN, '202001010000Z', '2020-01-01T00:00:00.000Z'],
    [GEN, '2020010100Z', '2020-01-01T00:00:00.000Z'],
    [GEN, '20191231235960Z', '2020-01-01T00:00:00.000Z'],
    [GEN, '20200101000000.5Z', '2020-01-01T00:00:00.005Z'],
    [GEN, '20200101000000.50Z', '2020-01-01T00:00:00.050Z'],
    [GEN, '20200101000000.123Z', '2020-01-01T00:00:00.123Z'],
    [GEN, '20200101000000.000Z', '2020-01-01T00:00:00.000Z'],
    [UTC, '200101000000Z', '2020-01-01T00:00:00.000Z'],
    [UTC, '2001010000Z', '2020-01-01T00:00:00.000Z'],
    [UTC, '991231235959Z', '1999-12-31T23:59:59.000Z'],
    [UTC, '510101000000Z', '1951-01-01T00:00:00.000Z'],
    [UTC, '500101000000Z', '2050-01-01T00:00:00.000Z'], // 0.2.6 rule: only YY > 50 is 19YY
    [UTC, '000229120000+0100', '2000-02-29T11:00:00.000Z'],
  ];
  for (const [tag, text, iso] of cases) {
    assert.is(decodeExec(withStarted(tag, text)).started.toISOString(), iso, text);
  }
});

test('malformed times are errors naming the field and the text', () => {
  const bad: Array<[number, string]> = [
    [GEN, '20200101000000,5Z'], [GEN, '20201301000000Z'], [GEN, '20200001000000Z'], [GEN, '20190229000000Z'],
    [GEN, '20200101240000Z'], [GEN, '20200101006000Z'], [GEN, '20200101000061Z'], [GEN, '20200101000000+2400'],
    [GEN, '20200101000000+0060'], [GEN, '20200101000000.Z'], [GEN, '20200101000000.1234Z'], [GEN, 'yesterday'],
    [GEN, ''], [UTC, '200101000000.5Z'], [UTC, '20200101000000Z'],
  ];
  for (const [tag, text] of bad) {
    const msg = rejects(withStarted(tag, text), /started as a valid (GeneralizedTime|UTCTime)/);
    assert.ok(msg.includes(JSON.stringify(text)), msg);
  }
  rejects(withStarted(0x0c, '20200101000000Z'), /started \(GeneralizedTime or UTCTime\).*UTF8String/);
  assert.is(parseTime('20200101000000Z')?.toISOString(), '2020-01-01T00:00:00.000Z');
});

// ---- streaming -----------------------------------------------------------------------------

function memoryArtifact(path: Buffer | string, data: Buffer, chunk: number): StreamArtifact {
  return {
    path,
    size: data.length,
    open: async function* () {
      for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
    },
  };
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body) void _;
}

test('streaming: an artifact that is longer or shorter than announced fails the upload', async () => {
  const base = execFromJson(json('empty-console'));
  const lying = (size: number, data: Buffer): StreamArtifact => ({ ...memoryArtifact('bin/x', data, 4), size });
  for (const [size, data, pattern] of [[10, Buffer.alloc(11), /at least 11/], [10, Buffer.alloc(9), /only 9/]] as const) {
    const { body } = streamExec({ ...base, artifacts: [lying(size, data)] });
    try {
      await drain(body);
      assert.unreachable('should fail');
    } catch (err) {
      assert.instance(err, BuilderWebFormatError);
      assert.match((err as Error).message, pattern);
    }
  }
  assert.throws(() => streamExec({ ...base, artifacts: [lying(-1, Buffer.alloc(0))] }), /byte size/);
  assert.throws(() => streamExec({ ...base, artifacts: [memoryArtifact('', Buffer.alloc(1), 1)] }), /non-empty/);
});

test('streaming: a 50 MB file gives the same bytes as the buffered encoder, read chunk by chunk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'builder-web-format-'));
  try {
    const big = join(dir, 'big.hvt');
    const size = 50 * 1024 * 1024 + 7; // odd size: long-form lengths of 4 bytes, partial last chunk
    writePseudoRandom(big, size);
    const small = Buffer.from('opam-switch: none\n');
    const base = execFromJson(json('exited0-artifacts'));
    const rec: ExecRecord = { ...base, artifacts: [] };

    let maxChunk = 0;
    let opened = 0;
    const streamed = createHash('sha256');
    let streamedLength = 0;
    const { length, body } = streamExec({
      ...rec,
      artifacts: [
        { path: 'bin/big.hvt', size, open: () => { opened++; return createReadStream(big); } },
        memoryArtifact('BUILD_INFO/opam-switch', small, 5),
      ],
    });
    assert.is(opened, 0, 'nothing is opened before the body is read');
    for await (const chunk of body) {
      maxChunk = Math.max(maxChunk, chunk.length);
      streamedLength += chunk.length;
      streamed.update(chunk);
    }
    assert.is(opened, 1);
    assert.is(streamedLength, length, 'Content-Length matches the body');
    assert.ok(maxChunk <= 1024 * 1024, `largest chunk ${maxChunk} bytes: files are not held whole`);

    const buffered = encodeExec({ ...rec, artifacts: [['bin/big.hvt', readFileSync(big)], ['BUILD_INFO/opam-switch', small]] });
    assert.is(buffered.length, length);
    assert.is(streamed.digest('hex'), createHash('sha256').update(buffered).digest('hex'));
    const back = decodeExec(buffered);
    assert.is(back.artifacts[0]![1].length, size);
    assert.is(back.artifacts[1]![1].toString(), small.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Deterministic, incompressible-looking content, written 1 MiB at a time. */
function writePseudoRandom(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    let seed = 0x12345678;
    const block = Buffer.alloc(1024 * 1024);
    for (let written = 0; written < size; ) {
      for (let i = 0; i < block.length; i += 4) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        block.writeUInt32LE(seed, i);
      }
      const n = Math.min(block.length, size - written);
      writeSync(fd, block, 0, n);
      written += n;
    }
  } finally {
    closeSync(fd);
  }
}

test.run();
