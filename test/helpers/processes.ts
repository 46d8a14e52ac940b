// Starts the real programs for tests and benchmarks: a server on an ephemeral port with its own
// state directory, workers and clients against it. Everything started is stopped by cleanup().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/test/helpers/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const bin = (name: 'server' | 'worker' | 'client' | 'inspect'): string => join(repoRoot, 'dist', 'src', name, 'main.js');

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

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
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

  constructor(prefix = 'builder-test-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  spawn(file: string, args: string[], label: string, env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(process.execPath, [file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BUILDER_TOKEN: '', BUILDER_REMOTE: '', ...env },
    });
    const p = new Proc(child, label);
    this.procs.push(p);
    return p;
  }

  /** Starts a server; `port` 0 picks a free one, a fixed port lets a restart keep its address. */
  async server(opts: { dir?: string; port?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ServerHandle> {
    const dir = opts.dir ?? this.path('state');
    const proc = this.spawn(bin('server'), ['--dir', dir, '--config-dir', this.path('etc'), '--port', String(opts.port ?? 0), ...(opts.args ?? [])],
      'server', opts.env);
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

  /** Stops every process this harness started and removes its files. */
  async cleanup(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exited));
    this.procs = [];
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** uvu has no per-test timeout: wrap a test body with one. */
export function withTimeout<T>(ms: number, fn: () => Promise<T>): () => Promise<T> {
  return () =>
    Promise.race([
      fn(),
      new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`test timed out after ${ms} ms`)), ms).unref()),
    ]);
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
