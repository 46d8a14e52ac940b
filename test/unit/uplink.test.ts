// The worker's uplink in-process: a fake server port, a fake clock and a sandbox the test drives,
// so re-attach, buffering, sequence numbers, acks, refusals and back-off are checked in
// milliseconds (the same guarantees over real processes: test/integration/worker.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BuilderError, type ErrorCode } from '../../src/common/errors.js';
import type { Logger } from '../../src/common/log.js';
import type { Job, Message, Welcome, WorkerHelloInfo } from '../../src/protocol/messages.js';
import type { ExitStatus, RunHandle, Sandbox, SandboxBackend } from '../../src/worker/sandbox/types.js';
import type { Dialer, ServerPort } from '../../src/worker/server-port.js';
import { Uplink, type Clock } from '../../src/worker/uplink.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

class FakeSandbox implements Sandbox {
  destroyed = 0;
  killed = false;
  private output: ((chunk: Buffer) => void) | undefined;
  private end: ((status: ExitStatus) => void) | undefined;
  constructor(readonly id: string) {}
  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    this.output = onOutput;
    const done = new Promise<ExitStatus>((resolve) => (this.end = resolve)).then((status) => ({ status, stats: {} }));
    return { done, kill: async () => { this.killed = true; this.end!({ kind: 'signalled', signal: 9 }); } };
  }
  print(text: string): void { this.output!(Buffer.from(text)); }
  exit(code = 0): void { this.end!({ kind: 'exited', code }); }
  async collect() { return { files: [], refusals: [] }; }
  async destroy() { this.destroyed++; }
}

class FakeBackend implements SandboxBackend {
  readonly name = 'fake';
  readonly storagePath = '/';
  readonly made = new Map<string, FakeSandbox>();
  async prepare(job: { uuid: string }) {
    const sb = new FakeSandbox(job.uuid);
    this.made.set(job.uuid, sb);
    return sb;
  }
  async sweep() { return []; }
}

class FakePort implements ServerPort {
  sent: Message[] = [];
  closed = false;
  private deliver: ((msg: Message) => void) | undefined;
  private onClose: ((reason: string) => void) | undefined;
  send(msg: Message): boolean { if (!this.closed) this.sent.push(msg); return true; }
  async drained() {}
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.(reason);
  }
  listen(onMessage: (msg: Message) => void, onClose: (reason: string) => void): void {
    this.deliver = onMessage;
    this.onClose = onClose;
    if (this.closed) onClose('closed');
  }
  from(msg: Message): void { this.deliver!(msg); }
  of<T extends Message['t']>(t: T): Array<Extract<Message, { t: T }>> {
    return this.sent.filter((m): m is Extract<Message, { t: T }> => m.t === t);
  }
}

/** a server that answers each hello with answer(hello), or the error it throws */
function fakeServer(answer: (hello: WorkerHelloInfo) => Omit<Welcome, 't' | 'server'>) {
  const hellos: WorkerHelloInfo[] = [];
  const ports: FakePort[] = [];
  const dial: Dialer = async (hello) => {
    hellos.push(hello);
    const welcome: Welcome = { t: 'welcome', server: 'fake', ...answer(hello) };
    const port = new FakePort();
    ports.push(port);
    return { port, welcome };
  };
  return { dial, hellos, ports, get port() { return ports.at(-1)!; } };
}

/** time that moves only when told; sleeps are recorded and end at once */
function fakeClock(): Clock & { t: number; sleeps: number[] } {
  const c = {
    t: 1_000_000, sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => { c.sleeps.push(ms); c.t += ms; await new Promise((r) => setImmediate(r)); },
  };
  return c;
}

async function until<T>(what: string, probe: () => T | undefined | false, turns = 2000): Promise<T> {
  for (let i = 0; i < turns; i++) {
    const v = probe();
    if (v) return v;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

const job = (uuid: string): Job => ({ t: 'job', uuid, name: `job-${uuid}`, platform: 'p', script: 'true\n', timeoutMs: 60_000, sourceDateEpoch: 0 });

function makeUplink(dial: Dialer, clock = fakeClock(), capacity = 2) {
  const backend = new FakeBackend();
  const uplink = new Uplink({
    dial, clock, random: () => 0.5, backend, log: quiet,
    name: 'w', platform: 'p', capacity, once: false, limits: { noOutputTimeoutMs: 60_000, outputCapBytes: 64 << 20 },
  });
  void uplink.start();
  return { uplink, backend, clock };
}

const text = (lines: Array<[number, Buffer]>): string[] => lines.map(([, d]) => d.toString());

test('lines are numbered in order across batches; the run and its sandbox are kept until the ack', async () => {
  const server = fakeServer(() => ({}));
  const { uplink, backend, clock } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  clock.t += 250;
  sb.print('a\nb\n');
  const first = await until('first batch', () => server.port.of('output')[0]);
  assert.equal([first.seq, text(first.lines)], [0, ['a', 'b']]);
  assert.is(first.lines[0]![0], 250, 'ms since the run started, by the clock');
  sb.print('c\n');
  const second = await until('second batch', () => server.port.of('output')[1]);
  assert.equal([second.seq, text(second.lines)], [2, ['c']]);
  sb.exit(0);
  const fin = await until('finished', () => server.port.of('finished')[0]);
  assert.equal([fin.lastSeq, fin.result], [2, { kind: 'exited', code: 0 }]);
  assert.is(sb.destroyed, 0, 'not torn down before the ack');
  assert.is(uplink.runs, 1);
  server.port.from({ t: 'ack', uuid: 'r1' });
  await until('torn down', () => sb.destroyed === 1);
  assert.is(uplink.runs, 0);
  await uplink.abort();
});

test('a burst of many short lines goes in several output frames of at most 2048 lines, numbered without gaps', async () => {
  const server = fakeServer(() => ({}));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  // one chunk of 5000 lines: the server would refuse it as one frame (its object budget)
  sb.print(Array.from({ length: 5000 }, (_, i) => `${i}\n`).join(''));
  const frames = await until('all lines', () => {
    const out = server.port.of('output');
    return out.reduce((n, f) => n + f.lines.length, 0) === 5000 && out;
  });
  assert.ok(frames.length >= 3, `${frames.length} frames`);
  let next = 0;
  for (const f of frames) {
    assert.ok(f.lines.length <= 2048, `a frame of ${f.lines.length} lines`);
    assert.is(f.seq, next);
    assert.is(f.lines[0]![1].toString(), String(next));
    next += f.lines.length;
  }
  sb.exit(0);
  await until('finished', () => server.port.of('finished').length === 1);
  await uplink.abort();
});

test('output while disconnected is kept and sent again after re-attach, from the server\'s last stored line', async () => {
  const server = fakeServer((hello) => ({ attach: hello.running.map((r) => ({ uuid: r.uuid, haveSeq: 0 })) }));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  sb.print('a\n');
  await until('a sent', () => server.port.of('output').length === 1);
  server.port.close('network down');
  sb.print('b\nc\n');
  await until('reconnected', () => server.ports.length === 2);
  assert.equal(server.hellos[1]!.running, [{ uuid: 'r1', lastSeq: 2, finished: false }]);
  const resent = await until('re-sent', () => server.port.of('output')[0]);
  assert.equal([resent.seq, text(resent.lines)], [1, ['b', 'c']], 'only what the server lacks');
  sb.print('d\n');
  const next = await until('d sent', () => server.port.of('output')[1]);
  assert.is(next.seq, 3);
  sb.exit(0);
  await until('finished', () => server.port.of('finished').length === 1);
  await uplink.abort();
});

test('a run that finished while disconnected is reported as finished and its result sent again until the ack', async () => {
  const server = fakeServer((hello) => ({ attach: hello.running.map((r) => ({ uuid: r.uuid, haveSeq: r.lastSeq })) }));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  server.port.close('network down');
  sb.print('x\n');
  sb.exit(3);
  await until('reconnected', () => server.ports.length === 2);
  assert.equal(server.hellos[1]!.running, [{ uuid: 'r1', lastSeq: 0, finished: true }]);
  const fin = await until('finished again', () => server.port.of('finished')[0]);
  assert.equal(fin.result, { kind: 'exited', code: 3 });
  assert.is(server.port.of('output').length, 0, 'the server had every line');
  assert.is(sb.destroyed, 0);
  server.port.from({ t: 'ack', uuid: 'r1' });
  await until('torn down', () => sb.destroyed === 1);
  await uplink.abort();
});

test('only the newest 16 MiB of output is kept while disconnected, without gaps', async () => {
  const server = fakeServer((hello) => ({ attach: hello.running.map((r) => ({ uuid: r.uuid, haveSeq: -1 })) }));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  server.port.close('network down');
  const line = `${'x'.repeat(1023)}\n`;
  for (let i = 0; i < 24; i++) sb.print(line.repeat(1024)); // 24 MiB
  await until('reconnected', () => server.ports.length === 2);
  // sent again in frames of at most 4 MiB, numbered without gaps
  const frames = await until('re-sent', () => {
    const out = server.port.of('output');
    const tail = out.at(-1);
    return tail && tail.seq + tail.lines.length - 1 === 24 * 1024 - 1 && out;
  });
  let next = frames[0]!.seq;
  for (const f of frames) {
    assert.is(f.seq, next, 'no gap between frames');
    next += f.lines.length;
  }
  const kept = next - frames[0]!.seq;
  assert.ok(frames[0]!.seq > 0 && kept * 1024 <= 16 << 20 && kept * 1024 > 15 << 20, `kept ${kept} lines`);
  sb.exit(0);
  await uplink.abort();
});

test('a run the server no longer holds is cancelled at re-attach, and its sandbox removed once the runner is out', async () => {
  const server = fakeServer(() => ({ attach: [] }));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb = await until('sandbox', () => backend.made.get('r1'));
  await until('started', () => (sb.print(''), true));
  server.port.close('network down');
  await until('reconnected', () => server.ports.length === 2);
  await until('killed and torn down', () => sb.killed && sb.destroyed === 1);
  assert.is(uplink.runs, 0);
  assert.is(server.port.of('finished').length, 0, 'nothing is reported for a dropped run');
  await uplink.abort();
});

test('refused: the run is dropped and torn down; cancel: the run ends as cancelled with the reason', async () => {
  const server = fakeServer(() => ({}));
  const { uplink, backend } = makeUplink(server.dial);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  server.port.from(job('r2'));
  const sb1 = await until('sandbox 1', () => backend.made.get('r1'));
  const sb2 = await until('sandbox 2', () => backend.made.get('r2'));
  await until('started', () => (sb1.print(''), sb2.print(''), true));
  sb1.exit(0);
  await until('r1 finished', () => server.port.of('finished').find((m) => m.uuid === 'r1'));
  server.port.from({ t: 'refused', uuid: 'r1', reason: 'artifacts too big' });
  await until('r1 torn down', () => sb1.destroyed === 1);
  server.port.from({ t: 'cancel', uuid: 'r2', reason: 'cancelled by alice' });
  const fin = await until('r2 finished', () => server.port.of('finished').find((m) => m.uuid === 'r2'));
  assert.equal(fin.result, { kind: 'cancelled', reason: 'cancelled by alice' });
  assert.ok(sb2.killed);
  assert.is(sb2.destroyed, 0, 'kept until the ack like any run');
  await uplink.abort();
  assert.is(sb2.destroyed, 1, 'a hard stop removes what is kept');
});

test('a job beyond capacity is handed back as an infrastructure failure', async () => {
  const server = fakeServer(() => ({}));
  const { uplink, backend } = makeUplink(server.dial, fakeClock(), 1);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  server.port.from(job('r2'));
  const back = await until('handed back', () => server.port.of('finished').find((m) => m.uuid === 'r2'));
  assert.equal(back.result, { kind: 'failed', message: 'worker w cannot take jobs now', infra: true });
  assert.is(backend.made.has('r2'), false);
  await uplink.abort();
});

test('a run whose result has gone frees its slot before the ack: the next job runs while the server stores it, and no more than capacity such runs are kept', async () => {
  const server = fakeServer(() => ({}));
  const { uplink, backend } = makeUplink(server.dial, fakeClock(), 1);
  await until('connected', () => server.ports.length === 1);
  server.port.from(job('r1'));
  const sb1 = await until('sandbox r1', () => backend.made.get('r1'));
  await until('started', () => (sb1.print(''), true));
  sb1.exit(0);
  await until('r1 finished', () => server.port.of('finished').find((m) => m.uuid === 'r1'));
  server.port.from(job('r2'));
  const sb2 = await until('r2 taken while r1 waits for its ack', () => backend.made.get('r2'));
  assert.is(sb1.destroyed, 0, 'r1 is kept until its ack');
  assert.is(uplink.runs, 2);
  // r2 still running: capacity 1 is taken
  server.port.from(job('r3'));
  const back = await until('r3 handed back', () => server.port.of('finished').find((m) => m.uuid === 'r3'));
  assert.equal(back.result, { kind: 'failed', message: 'worker w cannot take jobs now', infra: true });
  // r2 ends too: two results wait for their acks, which is all a worker of capacity 1 keeps
  await until('started', () => (sb2.print(''), true));
  sb2.exit(0);
  await until('r2 finished', () => server.port.of('finished').find((m) => m.uuid === 'r2'));
  server.port.from(job('r4'));
  const back4 = await until('r4 handed back', () => server.port.of('finished').find((m) => m.uuid === 'r4'));
  assert.is(back4.result.kind, 'failed');
  assert.is(backend.made.has('r4'), false);
  server.port.from({ t: 'ack', uuid: 'r1' });
  await until('r1 torn down', () => sb1.destroyed === 1);
  server.port.from(job('r5'));
  await until('r5 taken after an ack', () => backend.made.get('r5'));
  await uplink.abort();
});

test('reconnects back off from 100 ms to 5 s, start over after a success, and another protocol version waits longest', async () => {
  let failures = 8;
  let code: ErrorCode = 'CONNECT';
  const ports: FakePort[] = [];
  const dial: Dialer = async () => {
    if (failures-- > 0) throw new BuilderError(code, 'no');
    const port = new FakePort();
    ports.push(port);
    return { port, welcome: { t: 'welcome', server: 'fake' } };
  };
  const { uplink, clock } = makeUplink(dial);
  await until('connected', () => ports.length === 1);
  assert.equal(clock.sleeps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  clock.sleeps.length = 0;
  failures = 1;
  code = 'VERSION';
  ports[0]!.close('server restart');
  await until('reconnected', () => ports.length === 2);
  assert.equal(clock.sleeps, [100, 5000], 'after a success the first retry is quick; another version does not retry fast');
  await uplink.abort();
});

for (const code of ['AUTH', 'FORBIDDEN'] as const) {
  test(`a refused token (${code}) ends the uplink with exit status 78 and no retry, also after a revocation mid-connection`, async () => {
    let dials = 0;
    const ports: FakePort[] = [];
    const dial: Dialer = async () => {
      if (++dials > 1) throw new BuilderError(code, 'server refused: unknown or revoked token "w1"');
      const port = new FakePort();
      ports.push(port);
      return { port, welcome: { t: 'welcome', server: 'fake' } };
    };
    const { uplink, clock } = makeUplink(dial);
    await until('connected', () => ports.length === 1);
    assert.is(uplink.exitCode, 0);
    ports[0]!.close('token w1 revoked');
    await uplink.done;
    assert.is(uplink.exitCode, 78);
    assert.is(dials, 2, 'not retried after the refusal');
    assert.equal(clock.sleeps, [100]);
  });
}

test.run();
