// Backend `docker`: one new container per job.
//
// Why the engine API on the unix socket (undici) and not the `docker` CLI (execa): a job needs
// about eight engine calls (create, copy the script in, attach, wait, start, inspect, copy
// /work out, remove). Each CLI call is a new process that parses its config and negotiates
// the API version: 35-130 ms apiece on our test machine, which alone would put a job well
// past 1.2x of `docker run --rm IMAGE true`; over the socket the same calls take a few ms.
// The API also answers with status codes (404 "No such image" is an infrastructure failure,
// not something to guess from stderr text), and hands us the output and the /work tar as
// streams that go straight into the console and the tar reader, without child pipes or
// temporary archives. The price is that we de-multiplex the attach stream ourselves (an
// 8-byte frame header) and pin an API version (1.41, Docker 20.10; newer engines accept it).
import { readFile, mkdir, rm, stat } from 'node:fs/promises';
import type { Duplex, Readable } from 'node:stream';
import { join } from 'node:path';
import { ENV_NAME, UMASK } from '../build-env.js';
import { collectDir } from './collect-dir.js';
import { DockerApi, demux, readAll } from './docker-api.js';
import { extractTar, tarOf } from './tar-extract.js';
import type {
  ArtifactSet,
  BackendContext,
  BackendFactory,
  ExitStatus,
  JobSpec,
  RunHandle,
  Sandbox,
  SandboxBackend,
} from './types.js';
import { InfraError, SandboxConfigError } from './types.js';
import { sandboxName, sandboxPrefix } from './sandbox-names.js';
import { scriptBuffer, type RunStats, type SandboxDescription } from '../../protocol/messages.js';

/**
 * Where the wrapper writes the script it reads from stdin: outside /work, so it is never
 * collected as an artifact, and on the tmpfs every container gets at /dev/shm, so any user can
 * write it without anything being copied into the container's file system beforehand.
 */
const SCRIPT = '/dev/shm/.builder-script';
/** what the wrapper writes on the container's stderr when the job left nothing in /work */
const EMPTY_WORK = 'empty\n';

export interface DockerOptions {
  image: string;
  user?: string;
  memoryBytes?: number;
  cpus?: number;
  pids: number;
  network: string;
  socket: string;
}

export function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkmg]?)b?$/i.exec(v.trim());
  if (!m) throw new Error(`bad size "${v}" (e.g. 512m, 2g)`);
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * mult);
}

/** Reads the container's cgroup directly (exact peak on cgroup v1); zeros when not visible. */
function sampleCgroup(id: string, everyMs = 250): { stop(): Promise<RunStats> } {
  const mem = [
    `/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`,
    `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope/memory.max_usage_in_bytes`,
    `/sys/fs/cgroup/docker/${id}/memory.peak`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.peak`,
    `/sys/fs/cgroup/docker/${id}/memory.current`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.current`,
  ];
  const cpu = [
    { file: `/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, toMs: (s: string) => Number(s) / 1e6 },
    { file: `/sys/fs/cgroup/cpuacct/system.slice/docker-${id}.scope/cpuacct.usage`, toMs: (s: string) => Number(s) / 1e6 },
    ...[`docker/${id}`, `system.slice/docker-${id}.scope`].map((d) => ({
      file: `/sys/fs/cgroup/${d}/cpu.stat`,
      toMs: (s: string) => Number(/usage_usec (\d+)/.exec(s)?.[1] ?? 0) / 1000,
    })),
  ];
  let peak = 0;
  let cpuMs = 0;
  let stopped = false;
  const first = async <T extends string | { file: string }>(list: T[]): Promise<[T, string] | undefined> => {
    for (const c of list) {
      try {
        return [c, await readFile(typeof c === 'string' ? c : c.file, 'utf8')];
      } catch {
        // not this layout
      }
    }
    return undefined;
  };
  const sample = async (): Promise<void> => {
    const m = await first(mem);
    if (m) peak = Math.max(peak, Number(m[1].trim()) || 0);
    const c = await first(cpu);
    if (c) cpuMs = Math.max(cpuMs, c[0].toMs(c[1]));
  };
  let running = sample();
  const timer = setInterval(() => (running = running.then(sample)), everyMs);
  timer.unref();
  return {
    async stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        await running;
        await sample(); // the cgroup may still be there right after exit
      }
      return { peakMemoryBytes: peak, cpuMs: Math.round(cpuMs) };
    },
  };
}

/**
 * The container's command: a wrapper that receives the script on stdin (from the attach, so no
 * archive call is needed to put it in), runs it, and says on its stderr when /work is empty (so
 * no archive call is needed to find that out). The script's own stderr goes into stdout, so both
 * keep their relative order; the container's stderr carries only what the wrapper says (that
 * report, or the shell's own note that the script was killed).
 *
 * The image's ENV lines and the engine's own additions (HOSTNAME always, HOME and PATH when
 * not given) would reach the script beside the job's variables, so the script starts from an
 * empty environment with only the job's. Their values come from the container's Env, so they
 * are in no command line that `docker inspect` shows; only their names are written into one.
 *
 * The script is checked for its length before it runs: a worker that dies while sending it
 * closes the container's stdin early, and a truncated script must never run.
 */
function wrapper(env: Readonly<Record<string, string>>, scriptBytes: number): string {
  const bad = Object.keys(env).find((k) => !ENV_NAME.test(k));
  if (bad !== undefined) throw new InfraError(`environment variable name "${bad}" cannot be given to a container`);
  const keep = Object.keys(env).map((k) => `${k}="$${k}"`).join(' ');
  return [
    // fd 3 is the console; the wrapper's own output, its shell's notes included, goes to stderr
    'exec 3>&1 1>&2',
    `cat >${SCRIPT} 2>&3 && [ $(wc -c <${SCRIPT}) -eq ${scriptBytes} ] || { echo "builder: the script did not arrive whole in ${SCRIPT}" >&3; exit 125; }`,
    'exec </dev/null',
    `umask ${UMASK}`,
    // in a subshell: the shell applies a command's redirections to itself while it waits, so its
    // note about a killed script would reach the console
    `(exec env -i ${keep} /bin/sh ${SCRIPT} >&3 2>&3 3>&-)`,
    'rc=$?',
    // a dangling link is an entry too (collect reports it as refused); a /work the script removed
    // or made unreadable is not called empty (the engine's copy says what is there)
    '[ -d /work ] && [ -r /work ] && [ -x /work ] || exit $rc',
    'for f in /work/* /work/.[!.]* /work/..?*; do if [ -e "$f" ] || [ -L "$f" ]; then exit $rc; fi; done',
    `echo ${EMPTY_WORK.trim()}`,
    'exit $rc',
  ].join('\n');
}

/** Docker reports a process killed by signal N as exit code 128+N, as shells do. */
function toStatus(code: number): ExitStatus {
  return code > 128 && code < 128 + 32 ? { kind: 'signalled', signal: code - 128 } : { kind: 'exited', code };
}

/** What prepare() asked the engine for at once, right after the create. */
interface Armed {
  /** the hijacked attach connection: stdin in, stdout and stderr out */
  socket: Duplex;
  /** the answer to POST /wait, registered before the start so no exit can be missed */
  wait: { status: number; body: Readable };
}

class DockerSandbox implements Sandbox {
  private handle: RunHandle | undefined;
  /** the wait has answered and the output has ended */
  private exited = false;
  private destroyed = false;
  private armed: Promise<Armed> | undefined;
  private description: Promise<SandboxDescription> | undefined;
  private onOutput: (chunk: Buffer) => void = () => undefined;
  /** the wrapper's own stderr: EMPTY_WORK when the job left nothing in /work */
  private report = '';
  constructor(
    private readonly api: DockerApi,
    readonly id: string,
    private readonly script: Buffer,
    private readonly outDir: string,
    private readonly gone: () => void = () => undefined,
  ) {}

  /**
   * Attach, wait and inspect (for describe) go out together right after the create, each on its
   * own connection, so their round trips overlap each other and the copy of /work in.
   */
  arm(): Promise<Armed> {
    const api = this.api;
    const id = this.id;
    this.description = api.json<{ Image?: string; Config?: { Image?: string } }>('GET', `/containers/${id}/json`).then(({ data }) => ({
      kind: 'docker',
      ...(data?.Config?.Image ? { image: data.Config.Image } : {}),
      ...(data?.Image ? { imageDigest: data.Image } : {}),
    }));
    this.description.catch(() => undefined); // awaited by describe(), if it is called
    const attached = api.attach(id, true).then((socket) => {
      socket.on('data', demux((chunk, stream) => {
        if (stream === 2) this.report += chunk.toString('latin1');
        else this.onOutput(chunk);
      }));
      return socket;
    });
    const waiting = api.raw('POST', `/containers/${id}/wait?condition=next-exit`).then(async (wait) => {
      if (wait.status !== 200) throw new InfraError(`Docker wait for ${id.slice(0, 12)}: ${wait.status} ${(await readAll(wait.body)).toString()}`);
      return wait;
    });
    this.armed = Promise.all([attached, waiting]).then(
      ([socket, wait]) => ({ socket, wait }),
      async (err: unknown) => {
        // one of them failed: let go of the other
        await attached.then((s) => s.destroy(), () => undefined);
        await waiting.then((w) => w.body.destroy(), () => undefined);
        throw err;
      },
    );
    return this.armed;
  }

  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    const api = this.api;
    const id = this.id;
    const { socket, wait } = await (this.armed ?? this.arm());
    this.onOutput = onOutput;
    const closed = new Promise<void>((res) => {
      socket.once('end', () => res()).once('close', () => res()).once('error', () => res());
    });
    // the engine holds the bytes until the container starts; ending our side closes its stdin
    socket.end(this.script);
    const started = await api.raw('POST', `/containers/${id}/start`);
    const startText = await readAll(started.body);
    if (started.status !== 204 && started.status !== 304) {
      socket.destroy();
      wait.body.destroy();
      throw new InfraError(`cannot start container ${id.slice(0, 12)}: ${started.status} ${startText.toString().trim()}`);
    }
    const stats = sampleCgroup(id);
    const done = (async () => {
      let code: number;
      try {
        const body = JSON.parse((await readAll(wait.body)).toString('utf8')) as { StatusCode: number };
        code = body.StatusCode;
      } catch (err) {
        socket.destroy();
        throw new InfraError(`lost the wait on container ${id.slice(0, 12)}: ${(err as Error).message}`, { cause: err });
      }
      await closed;
      return { status: toStatus(code), stats: await stats.stop() };
    })();
    done.then(() => (this.exited = true), () => undefined); // an unobserved rejection must not crash
    this.handle = {
      done,
      kill: async () => {
        // 409 / 404: not running any more, or already gone; both mean there is nothing to kill
        await api.json('POST', `/containers/${id}/kill?signal=KILL`, undefined, [404, 409]).catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
    return this.handle;
  }

  /**
   * The image the container was made from: its name and the engine's id for it (sha256 of the
   * image config), read from the container itself, so a tag moved meanwhile cannot mislead.
   * Asked for by arm(), beside the attach, so it costs no round trip of its own.
   */
  describe(): Promise<SandboxDescription> {
    return this.description ?? Promise.resolve({ kind: 'docker' });
  }

  async collect(): Promise<ArtifactSet> {
    await rm(this.outDir, { recursive: true, force: true });
    await mkdir(this.outDir, { recursive: true, mode: 0o700 });
    // the wrapper looked after the script had ended: nothing to copy out. A job that fakes this
    // report only loses its own artifacts.
    if (this.report === EMPTY_WORK) return { files: [], refusals: [] };
    const res = await this.api.raw('GET', `/containers/${this.id}/archive?path=/work`);
    if (res.status !== 200) {
      const text = (await readAll(res.body)).toString().trim();
      throw new InfraError(`cannot copy /work out of ${this.id.slice(0, 12)}: ${res.status} ${text}`);
    }
    const extracted = await extractTar(res.body, this.outDir);
    const set = await collectDir(join(this.outDir, 'work'));
    // the tar holds "work/..."; report refusals by the same relative paths as the artifacts
    const early = extracted.refusals.map((r) => ({ ...r, path: r.path.replace(/^work\//, '') }));
    return { files: set.files, refusals: [...early, ...set.refusals] };
  }

  async destroy(): Promise<void> {
    // after the exit there is nothing to kill: the removal alone does (one call less per job)
    if (this.handle && !this.exited) await this.handle.kill().catch(() => undefined);
    else if (this.armed) {
      // never started: let go of the attach and the wait
      await this.armed.then(({ socket, wait }) => {
        socket.destroy();
        wait.body.destroy();
      }, () => undefined);
    }
    if (!this.destroyed) {
      await this.api.json('DELETE', `/containers/${this.id}?force=1&v=1`, undefined, [404]);
      this.destroyed = true;
    }
    await rm(this.outDir, { recursive: true, force: true });
    this.gone();
  }
}

export class DockerBackend implements SandboxBackend {
  readonly name = 'docker';
  private readonly api: DockerApi;
  /** containers of jobs not yet destroyed: never pruned */
  private readonly live = new Set<string>();
  private dataRoot: Promise<string> | undefined;
  constructor(
    private readonly opts: DockerOptions,
    private readonly ctx: BackendContext,
  ) {
    this.api = new DockerApi(opts.socket);
  }

  /** artifacts are extracted here; the engine's own disk is checked by its own means */
  get storagePath(): string {
    return this.ctx.workDir;
  }

  private get outRoot(): string {
    return join(this.ctx.workDir, 'docker-out');
  }

  async prepare(job: JobSpec): Promise<Sandbox> {
    const o = this.opts;
    const hostConfig: Record<string, unknown> = {
      Init: true, // a real init as PID 1: the script's own signals behave as on a host
      NetworkMode: o.network,
      PidsLimit: o.pids,
      SecurityOpt: ['no-new-privileges'],
      LogConfig: { Type: 'none' }, // output comes through attach; no second copy on the engine's disk
    };
    if (o.memoryBytes !== undefined) Object.assign(hostConfig, { Memory: o.memoryBytes, MemorySwap: o.memoryBytes });
    if (o.cpus !== undefined) hostConfig.NanoCpus = Math.round(o.cpus * 1e9);
    const script = scriptBuffer(job.script);
    const config: Record<string, unknown> = {
      Image: o.image,
      Cmd: ['/bin/sh', '-c', wrapper(job.env, script.length)],
      Env: Object.entries(job.env).map(([k, v]) => `${k}=${v}`),
      WorkingDir: '/work',
      // the script comes in on stdin, which closes when our side of the attach ends
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      Labels: { 'builder.job': job.uuid, 'builder.worker': this.ctx.workerId },
      HostConfig: hostConfig,
    };
    if (o.user) config.User = o.user;
    // Docker refuses "+" and leading "." in names; the label keeps the worker's own name
    const name = sandboxName(sandboxPrefix(this.ctx.workerId), job.uuid);
    const { data } = await this.api.json<{ Id: string }>('POST', `/containers/create?name=${encodeURIComponent(name)}`, config);
    const id = data.Id;
    this.live.add(id);
    const sandbox = new DockerSandbox(this.api, id, script, join(this.outRoot, job.uuid), () => this.live.delete(id));
    try {
      const armed = sandbox.arm();
      // The engine makes the missing WorkingDir itself, owned by root: right for the image's own
      // user when that is root (the default), useless for another --user. For --user, /work is
      // copied in owned by it when the user is numeric, otherwise world-writable (sticky), since
      // we cannot know the uid a user name maps to inside the image.
      const work = o.user ? this.workFor(id, o.user) : Promise.resolve();
      await Promise.all([armed, work]);
      return sandbox;
    } catch (err) {
      await sandbox.destroy().catch(() => undefined);
      throw err instanceof InfraError ? err : new InfraError((err as Error).message, { cause: err });
    }
  }

  private async workFor(id: string, user: string): Promise<void> {
    const ids = /^(\d+)(?::(\d+))?$/.exec(user);
    const tar = tarOf([{
      name: 'work',
      type: 'dir',
      mode: ids ? 0o755 : 0o1777,
      uid: ids ? Number(ids[1]) : 0,
      gid: ids ? Number(ids[2] ?? ids[1]) : 0,
    }]);
    const res = await this.api.raw('PUT', `/containers/${id}/archive?path=/`, tar, { 'content-type': 'application/x-tar' });
    const text = await readAll(res.body);
    if (res.status !== 200) throw new InfraError(`cannot make /work in ${id.slice(0, 12)}: ${res.status} ${text}`);
  }

  /**
   * The engine's data root (GET /info DockerRootDir): images, containers and their writable
   * layers fill that file system, not ours. Asked once; a remote engine's path means nothing
   * here, so one that does not exist locally is left out.
   */
  async diskPaths(): Promise<string[]> {
    this.dataRoot ??= this.api.json<{ DockerRootDir?: string }>('GET', '/info').then(({ data }) => data?.DockerRootDir ?? '');
    const root = await this.dataRoot.catch((err: unknown) => {
      this.dataRoot = undefined;
      throw err;
    });
    return root && (await stat(root).then(() => true, () => false)) ? [root] : [];
  }

  /**
   * Stopped containers with this worker's label that no job holds (a removal that failed), and
   * their copied-out files. The backend makes no images (it never builds or pulls), so it
   * removes none: the configured image is the operator's.
   */
  async prune(): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({
      label: [`builder.worker=${this.ctx.workerId}`], status: ['created', 'exited', 'dead'],
    }));
    const { data } = await this.api.json<{ Id: string; Labels?: Record<string, string> }[]>('GET', `/containers/json?all=1&filters=${filters}`);
    const removed: string[] = [];
    for (const c of data ?? []) {
      if (this.live.has(c.Id)) continue;
      await this.api.json('DELETE', `/containers/${c.Id}?force=1&v=1`, undefined, [404]);
      removed.push(`container ${c.Id.slice(0, 12)} (job ${c.Labels?.['builder.job'] ?? '?'})`);
      const job = c.Labels?.['builder.job'];
      if (job && /^[A-Za-z0-9_-]+$/.test(job)) await rm(join(this.outRoot, job), { recursive: true, force: true });
    }
    return removed;
  }

  /** the image must be on this engine already: the worker never pulls (an unreachable engine is not a config error) */
  async check(): Promise<void> {
    const { status } = await this.api.json('GET', `/images/${encodeURIComponent(this.opts.image)}/json`, undefined, [404]);
    if (status === 404) {
      throw new SandboxConfigError(
        `docker image ${this.opts.image} does not exist on this host (the worker never pulls: docker pull or build it, or fix --image)`,
      );
    }
  }

  async sweep(): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [`builder.worker=${this.ctx.workerId}`] }));
    const { data } = await this.api.json<{ Id: string; Names?: string[]; Labels?: Record<string, string> }[]>(
      'GET',
      `/containers/json?all=1&filters=${filters}`,
    );
    const removed: string[] = [];
    for (const c of data ?? []) {
      await this.api.json('DELETE', `/containers/${c.Id}?force=1&v=1`, undefined, [404]);
      removed.push(`container ${c.Id.slice(0, 12)} (job ${c.Labels?.['builder.job'] ?? '?'})`);
    }
    await rm(this.outRoot, { recursive: true, force: true });
    return removed;
  }
}

export const dockerBackend: BackendFactory = {
  name: 'docker',
  description: 'a new Docker container per job from the platform\'s image, removed after the job (engine API on its unix socket)',
  options: [
    { flag: '--image', value: 'IMAGE', description: 'image the containers are made from (required; never pulled)' },
    { flag: '--user', value: 'USER', description: 'user the script runs as, e.g. 65534:65534 (default: the image\'s)' },
    { flag: '--memory', value: 'SIZE', description: 'memory limit, e.g. 2g (swap not allowed beyond it)' },
    { flag: '--cpus', value: 'N', description: 'CPU limit, e.g. 1.5' },
    { flag: '--pids', value: 'N', description: 'most processes at once', default: '1024' },
    { flag: '--network', value: 'MODE', description: 'bridge, none, host or a network name', default: 'bridge' },
    { flag: '--docker-socket', value: 'PATH', description: 'the engine\'s API socket', default: '/var/run/docker.sock' },
  ],
  create(options, ctx) {
    const image = options.image;
    if (!image) throw new Error('the docker sandbox needs --image IMAGE');
    const pids = Number(options.pids ?? '1024');
    if (!Number.isInteger(pids) || pids < 1) throw new Error(`bad --pids "${options.pids}"`);
    const cpus = options.cpus === undefined ? undefined : Number(options.cpus);
    if (cpus !== undefined && !(cpus > 0)) throw new Error(`bad --cpus "${options.cpus}"`);
    const opts: DockerOptions = {
      image,
      pids,
      network: options.network ?? 'bridge',
      socket: options['docker-socket'] ?? '/var/run/docker.sock',
    };
    if (options.user) opts.user = options.user;
    if (options.memory) opts.memoryBytes = parseSize(options.memory);
    if (cpus !== undefined) opts.cpus = cpus;
    return new DockerBackend(opts, ctx);
  },
};
