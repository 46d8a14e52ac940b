// Starts the real programs for tests and benchmarks: a server on an ephemeral port with its own
// state directory, workers and clients against it. Everything started is stopped by cleanup(),
// or by withTimeout() when a test runs out of time.
//
// Each program starts as the leader of its own process group, so that one kill reaches what it
// started in that group; what left the group (the jobs a worker runs in their own groups) is
// found by the test mark every descendant inherits (process-marks.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killMarked, MARK_VAR as MARK, testMark } from './process-marks.js';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

/** The repository root, from dist/test/helpers/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/**
 * The program a test or bench starts: the compiled tree, or with BUILDER_TEST_BUNDLE=1 the bundle
 * the installed programs run (dist/bundle/bin/builder-NAME.cjs), which benches use to time what
 * users get (the bundle starts faster and sizes the server's thread pool, see threadpool.ts).
 */
export const bin = (name: 'server' | 'worker' | 'client' | 'inspect'): string =>
  process.env.BUILDER_TEST_BUNDLE === '1'
    ? join(repoRoot, 'dist', 'bundle', 'bin', `builder-${name}.cjs`)
    : join(repoRoot, 'dist', 'src', name, 'main.js');

export class Proc {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<{ re: RegExp; resolve(m: RegExpMatchArray): void }> = [];

  constructor(readonly child: ChildProcess, readonly label: string) {
    child.stdout?.on('data', (c: Buffer) => this.onOutput('stdout', c));
    child.stderr?.on('data', (c: Buffer) => this.onOutput('stderr', c));
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onOutput(which: 'stdout' | 'stderr', chunk: Buffer): void {
    this[which] += chunk.toString('utf8');
    if (process.env.BUILDER_TEST_VERBOSE) process.stderr.write(`[${this.label}] ${chunk}`);
    this.waiters = this.waiters.filter((w) => {
      const m = (this.stdout + this.stderr).match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolves when stdout+stderr (so far or later) match; rejects after timeoutMs. */
  waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const m = (this.stdout + this.stderr).match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${re}\n--- output ---\n${(this.stdout + this.stderr).slice(-3000)}`));
      }, timeoutMs);
      const waiter = { re, resolve: (mm: RegExpMatchArray) => { clearTimeout(timer); resolvePromise(mm); } };
      this.waiters.push(waiter);
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signals the program itself (what a user or a service manager would do). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILLs the program's whole process group (it is the leader), even after the leader died. */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // ESRCH: nothing of the group is left
    }
  }
}

/** Every program any harness started that has not exited yet, in start order. */
const live = new Set<Proc>();

function stopProcs(procs: Iterable<Proc>): void {
  for (const p of procs) p.killGroup();
}

// A test process that ends (uvu done, an uncaught error, Ctrl-C) takes what it started with it:
// the programs sit in their own process groups, out of reach of the terminal's signal.
process.once('exit', () => {
  stopProcs(live);
  killMarked(testMark());
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => process.exit(130));
}

export interface ServerHandle {
  proc: Proc;
  port: number;
  dir: string;
  remote: string;
  tokenFile: string;
}

export class Harness {
  readonly root: string;
  private procs: Proc[] = [];
  private closed = false;

  constructor(prefix = 'builder-test-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  spawn(file: string, args: string[], label: string, env: NodeJS.ProcessEnv = {}, nodeFlags: readonly string[] = []): Proc {
    if (this.closed) throw new Error(`${label}: not started, this harness was cleaned up (the test timed out or ended)`);
    const child = spawn(process.execPath, [...nodeFlags, file, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BUILDER_TOKEN: '', BUILDER_REMOTE: '', [MARK]: testMark(), ...env },
    });
    const p = new Proc(child, label);
    this.procs.push(p);
    live.add(p);
    void p.exited.then(() => live.delete(p));
    return p;
  }

  /** Starts a server; `port` 0 picks a free one, a fixed port lets a restart keep its address. */
  async server(opts: { dir?: string; port?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ServerHandle> {
    const dir = opts.dir ?? this.path('state');
    const proc = this.spawn(bin('server'), ['--dir', dir, '--config-dir', this.path('etc'), '--port', String(opts.port ?? 0), ...(opts.args ?? [])],
      'server', opts.env, SERVER_NODE_FLAGS);
    const m = await proc.waitFor(/listening address=127\.0\.0\.1:(\d+)/);
    const port = Number(m[1]);
    return { proc, port, dir, remote: `127.0.0.1:${port}`, tokenFile: join(dir, 'token') };
  }

  worker(server: ServerHandle, platform: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
    const name = args.includes('--name') ? args[args.indexOf('--name') + 1]! : `w-${platform}-${this.procs.length}`;
    return this.spawn(bin('worker'), [platform, '--remote', server.remote, '--token-file', server.tokenFile,
      '--work-dir', this.path('workers'), ...(args.includes('--name') ? [] : ['--name', name]), ...args], `worker ${name}`, env);
  }

  /** Runs builder-client to completion. */
  async client(server: ServerHandle, args: string[], opts: { tokenFile?: string; env?: NodeJS.ProcessEnv } = {}) {
    const p = this.spawn(bin('client'), ['--remote', server.remote, '--token-file', opts.tokenFile ?? server.tokenFile, ...args], `client ${args[0]}`, opts.env);
    const { code } = await p.exited;
    return { code, stdout: p.stdout, stderr: p.stderr, proc: p };
  }

  /** Starts builder-client without waiting (observe, execute --follow). */
  clientProc(server: ServerHandle, args: string[]): Proc {
    return this.spawn(bin('client'), ['--remote', server.remote, '--token-file', server.tokenFile, ...args], `client ${args[0]}`);
  }

  async inspect(args: string[]) {
    const p = this.spawn(bin('inspect'), args, 'inspect');
    const { code } = await p.exited;
    return { code, stdout: p.stdout, stderr: p.stderr };
  }

  /** Writes a job script into the harness directory and returns its path. */
  script(name: string, body: string): string {
    const file = this.path(`${name}.sh`);
    writeFileSync(file, body);
    return file;
  }

  /** `builder-client info --json`, parsed. */
  async info(server: ServerHandle): Promise<any> {
    const r = await this.client(server, ['info', '--json']);
    if (r.code !== 0) throw new Error(`info failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** `builder-client history [JOB] --json`, parsed. */
  async history<T = any>(server: ServerHandle, job?: string): Promise<T[]> {
    const r = await this.client(server, ['history', ...(job ? [job] : []), '--json']);
    if (r.code !== 0) throw new Error(`history failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T[];
  }

  token(server: ServerHandle): string {
    return readFileSync(server.tokenFile, 'utf8').trim();
  }

  /**
   * Stops every process this harness started, with their process groups and whatever they left
   * in other groups (a job still running after its worker was killed with -9), and removes its
   * files. A test body still running after its timeout can start nothing more here.
   */
  async cleanup(): Promise<void> {
    this.closed = true;
    stopProcs(this.procs);
    await Promise.all(this.procs.map((p) => p.exited));
    const mine = new Set(this.procs.map((p) => p.pid));
    // tests run one at a time in a file, so marked processes outside other live harnesses'
    // groups are this harness's leftovers
    const others = new Set([...live].filter((p) => !mine.has(p.pid)).map((p) => p.pid));
    killMarked(testMark(), (m) => others.has(m.pgid));
    this.procs = [];
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * uvu has no per-test timeout: wrap a test body with one. On expiry the test fails, and every
 * program started during it (by any harness) is killed with its process group, as is every
 * marked process outside the groups of programs that were already running when it began (a
 * server a suite shares), so no server, worker or job outlives a test that timed out.
 */
export function withTimeout<T>(ms: number, fn: () => Promise<T>): (ctx?: { __test__?: string }) => Promise<T> {
  return async (ctx) => {
    const before = new Set(live);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const started = [...live].filter((p) => !before.has(p));
        stopProcs(started);
        const kept = new Set([...before].map((p) => p.pid));
        const killed = killMarked(testMark(), (m) => kept.has(m.pgid));
        const what = [...new Set([...started.map((p) => `${p.label} (${p.pid})`), ...killed.map((k) => `${k.args} (${k.pid})`)])];
        reject(new Error(`test ${ctx?.__test__ ? `"${ctx.__test__}" ` : ''}timed out after ${ms} ms; killed ${what.length ? what.join(', ') : 'nothing'}`));
      }, ms);
    });
    try {
      return await Promise.race([fn(), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Polls until check() returns a truthy value (for state that has no event to wait on). */
type Falsy = false | undefined | null | 0 | '';
export async function eventually<T>(check: () => T | Falsy | Promise<T | Falsy>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** pids of the processes on this host whose command line is exactly `sleep N` (a job's, in any sandbox) */
export const sleepers = (n: number): number[] =>
  readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') === `sleep ${n}`;
    } catch {
      return false;
    }
  }).map(Number);
