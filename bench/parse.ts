// Frame parsing speed: CBOR decode plus the message check, for three typical frames (an output
// batch of 100 console lines, a finished, a schedule request). The check runs on every frame a
// server receives, so a change to the validator must not make this slower (issue 7).
//   node dist/bench/parse.js    prints {outputPerSec, finishedPerSec, requestPerSec}
// BUILDER_BENCH_PARSE_MS sets how long each kind is timed (default 1000 ms, after a warm-up).
import { fileURLToPath } from 'node:url';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { parseMessage } from '../src/protocol/parse.js';

const RUN_MS = Number(process.env.BUILDER_BENCH_PARSE_MS) > 0 ? Number(process.env.BUILDER_BENCH_PARSE_MS) : 1000;

const uuid = '0b6c2a4e-8f3d-4c1a-9e7b-5d2f1a3c4b6d';
const frames = {
  output: encodeValue({
    t: 'output', uuid, seq: 1200,
    lines: Array.from({ length: 100 }, (_, i) => [i * 13, Buffer.from(`line ${i}: cc -O2 -c src/file-${i}.c -o obj/file-${i}.o`)]),
  }),
  finished: encodeValue({
    t: 'finished', uuid, result: { kind: 'exited', code: 0 }, lastSeq: 1299, artifacts: 3,
    stats: { peakMemoryBytes: 123_456_789, cpuMs: 4567 }, refusals: [{ path: '../x', reason: 'leaves the output directory' }],
  }),
  request: encodeValue({
    t: 'req', id: 7, op: 'schedule', name: 'hello', platform: 'debian-12', script: '#!/bin/sh\necho hello\n'.repeat(20),
    cron: '0 3 * * 1', tz: 'Europe/Berlin', timeoutSec: 600,
  }),
};

function opsPerSec(frame: Buffer): number {
  const round = (): void => void parseMessage(decodeValue(frame));
  for (let i = 0; i < 20_000; i++) round();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(RUN_MS) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 1000; i++) round();
    n += 1000;
    now = process.hrtime.bigint();
  }
  return Math.round(n / (Number(now - start) / 1e9));
}

export async function benchParse(): Promise<{ outputPerSec: number; finishedPerSec: number; requestPerSec: number }> {
  return {
    outputPerSec: opsPerSec(frames.output),
    finishedPerSec: opsPerSec(frames.finished),
    requestPerSec: opsPerSec(frames.request),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  void benchParse().then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
}
