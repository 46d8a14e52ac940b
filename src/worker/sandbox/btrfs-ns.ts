// Backend `btrfs-ns` (Linux): a btrfs snapshot of a read-only base per job (btrfs-snapshot.ts),
// the script run in it chrooted in new namespaces as an unprivileged user (namespaces.ts),
// artifacts read straight from the snapshot's /work, the snapshot deleted afterwards.
import { chmod, chown, mkdir, realpath, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { errorMessage } from '../../common/errors.js';
import { checkBase, createSnapshot, deleteSnapshot, listSnapshots, syncDeletions } from './btrfs-snapshot.js';
import { collectDir } from './collect-dir.js';
import { endProcessesRootedIn } from './leftover-processes.js';
import { ensureDevTemplate, hasOwnDev, runInNamespaces } from './namespaces.js';
import type { BackendContext, BackendFactory, JobSpec, RunHandle, Sandbox, SandboxBackend, SandboxDescription } from './types.js';
import { InfraError, SandboxConfigError } from './types.js';
import { isOwnSandbox, sandboxName, sandboxPrefix } from './sandbox-names.js';

/** at the snapshot's root, outside /work: never collected, and not writable by the job */
const SCRIPT = '/.builder-script';

export interface BtrfsNsOptions {
  base: string;
  dir: string;
  hostNetwork: boolean;
  uid: number;
  gid: number;
}

class BtrfsNsSandbox implements Sandbox {
  private handle: RunHandle | undefined;
  constructor(
    readonly id: string,
    private readonly opts: BtrfsNsOptions,
    private readonly devTemplate: string | undefined,
    private readonly env: Readonly<Record<string, string>>,
    private readonly gone: () => void,
  ) {}

  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    this.handle = await runInNamespaces(
      {
        root: this.id,
        script: SCRIPT,
        user: `${this.opts.uid}:${this.opts.gid}`,
        env: this.env,
        hostNetwork: this.opts.hostNetwork,
        ...(this.devTemplate ? { devTemplate: this.devTemplate } : {}),
      },
      onOutput,
    );
    return this.handle;
  }

  collect() {
    return collectDir(join(this.id, 'work'));
  }

  async describe(): Promise<SandboxDescription> {
    return { kind: 'btrfs-ns', snapshot: this.opts.base };
  }

  async destroy(): Promise<void> {
    // every process must be gone before the snapshot goes (the namespace dies with unshare)
    if (this.handle) await this.handle.kill();
    await deleteSnapshot(this.id);
    this.gone();
  }
}

export class BtrfsNsBackend implements SandboxBackend {
  readonly name = 'btrfs-ns';
  private baseChecked = false;
  private devTemplate: Promise<string> | undefined;
  /** snapshots of jobs not yet destroyed: never pruned */
  private readonly live = new Set<string>();
  constructor(
    private readonly opts: BtrfsNsOptions,
    private readonly ctx: BackendContext,
  ) {}

  get storagePath(): string {
    return this.opts.dir;
  }

  private get prefix(): string {
    return sandboxPrefix(this.ctx.workerId);
  }

  async prepare(job: JobSpec): Promise<Sandbox> {
    if (!this.baseChecked) {
      await checkBase(this.opts.base);
      this.baseChecked = true;
    }
    const path = await createSnapshot(this.opts.base, this.opts.dir, sandboxName(this.prefix, job.uuid));
    this.live.add(path);
    try {
      // /work belongs to the job's user; the script is root's and only readable
      await mkdir(join(path, 'work'), { recursive: true });
      await chown(join(path, 'work'), this.opts.uid, this.opts.gid);
      await chmod(join(path, 'work'), 0o755);
      await mkdir(join(path, 'proc'), { recursive: true });
      await mkdir(join(path, 'dev'), { recursive: true });
      await writeFile(join(path, SCRIPT), job.script, { mode: 0o644 });
      // readable by the job's user whatever the worker's own umask (writeFile's mode is masked by it)
      await chmod(join(path, SCRIPT), 0o644);
      let dev: string | undefined;
      if (!(await hasOwnDev(path))) {
        this.devTemplate ??= ensureDevTemplate(join(this.opts.dir, '.builder-dev'));
        dev = await this.devTemplate.catch((err: unknown) => {
          this.devTemplate = undefined;
          throw err;
        });
      }
      return new BtrfsNsSandbox(path, this.opts, dev, job.env, () => this.live.delete(path));
    } catch (err) {
      await deleteSnapshot(path).catch(() => undefined);
      this.live.delete(path);
      throw new InfraError(`cannot prepare snapshot ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** the base must be a read-only subvolume: a missing or writable one is a configuration error */
  async check(): Promise<void> {
    try {
      await checkBase(this.opts.base);
    } catch (err) {
      throw new SandboxConfigError(errorMessage(err), { cause: err });
    }
    this.baseChecked = true;
  }

  /**
   * A predecessor killed with -9 left its jobs running in their namespaces: they are ended
   * first (found by their root, see leftover-processes.ts), then their snapshots deleted.
   */
  async sweep(): Promise<string[]> {
    // the kernel shows a process's root as a canonical path: --btrfs-dir as given may not be one
    const dirs = new Set([resolve(this.opts.dir), await realpath(this.opts.dir).catch(() => resolve(this.opts.dir))]);
    // one of this worker's snapshots: its prefix and a job's uuid, never another worker's whose name extends ours
    const owns = (path: string): boolean => dirs.has(dirname(path)) && isOwnSandbox(basename(path), this.prefix);
    const removed = await endProcessesRootedIn(owns);
    for (const path of await listSnapshots(this.opts.dir, this.prefix)) {
      if (!owns(resolve(path))) continue;
      await deleteSnapshot(path);
      removed.push(`snapshot ${path}`);
    }
    return removed;
  }

  /** This worker's snapshots that no job holds (a destroy that failed); space comes back after them. */
  async prune(): Promise<string[]> {
    const removed: string[] = [];
    for (const path of await listSnapshots(this.opts.dir, this.prefix)) {
      if (this.live.has(path)) continue;
      await deleteSnapshot(path);
      removed.push(`snapshot ${path}`);
    }
    // btrfs frees a deleted subvolume's extents in the background: wait, so the next free-space
    // check sees the space
    if (removed.length > 0) await syncDeletions(this.opts.dir).catch(() => undefined);
    return removed;
  }
}

export const btrfsNsBackend: BackendFactory = {
  name: 'btrfs-ns',
  description: 'a btrfs snapshot of a read-only base per job, the script chrooted in new namespaces (Linux)',
  options: [
    { flag: '--btrfs-base', value: 'PATH', description: 'read-only base subvolume jobs start from (required)' },
    { flag: '--btrfs-dir', value: 'DIR', description: 'where per-job snapshots go (default: the base\'s parent)' },
    { flag: '--network', value: 'none|host', description: 'none: a new empty network namespace', default: 'none' },
    { flag: '--user', value: 'UID:GID', description: 'numeric user the script runs as', default: '65534:65534' },
  ],
  create(options, ctx) {
    const base = options['btrfs-base'];
    if (!base) throw new Error('the btrfs-ns sandbox needs --btrfs-base PATH');
    const network = options.network ?? 'none';
    if (network !== 'none' && network !== 'host') throw new Error(`bad --network "${network}" (none or host)`);
    const m = /^(\d+):(\d+)$/.exec(options.user ?? '65534:65534');
    if (!m) throw new Error(`bad --user "${options.user}" (numeric UID:GID)`);
    const uid = Number(m[1]);
    if (uid === 0) throw new Error('--user 0 would run jobs as root; choose an unprivileged user');
    return new BtrfsNsBackend(
      { base, dir: options['btrfs-dir'] ?? dirname(base), hostNetwork: network === 'host', uid, gid: Number(m[2]) },
      ctx,
    );
  },
};
