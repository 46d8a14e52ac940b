// Backend `zfs-jail` (FreeBSD): a ZFS clone of a configured snapshot per job (zfs-clone.ts),
// a jail on it with its own hostname, an address from a range on a loopback interface and
// devfs (jail.ts); the script run inside as an unprivileged user; artifacts read from the
// clone; then the jail removed, devfs unmounted and the clone destroyed — also when any step
// before failed.
import { chmod, chown, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collectDir } from './collect-dir.js';
import { execInJail, listJails, removeJail, startJail, unmountDevfs } from './jail.js';
import { cloneMountpoint, createClone, destroyClone, listClones, snapshotExists } from './zfs-clone.js';
import type { BackendContext, BackendFactory, JobSpec, RunHandle, Sandbox, SandboxBackend, SandboxDescription } from './types.js';
import { InfraError, SandboxConfigError } from './types.js';
import { sandboxName, sandboxPrefix } from './sandbox-names.js';

/** at the clone's root, outside /work: never collected */
const SCRIPT = '/.builder-script';

export interface ZfsJailOptions {
  snapshot: string;
  parent: string;
  ips: string[];
  iface: string;
  user: string;
  resolvConf: string;
}

/** "127.0.2.2-127.0.2.254" -> every address in it (same first three octets) */
export function expandRange(range: string): string[] {
  const m = /^(\d+\.\d+\.\d+)\.(\d+)(?:-(?:\1\.)?(\d+))?$/.exec(range.trim());
  if (!m) throw new Error(`bad --jail-ips "${range}" (e.g. 127.0.2.2-127.0.2.254)`);
  const from = Number(m[2]);
  const to = Number(m[3] ?? m[2]);
  if (from > to || to > 255) throw new Error(`bad --jail-ips "${range}"`);
  return Array.from({ length: to - from + 1 }, (_, i) => `${m[1]}.${from + i}`);
}

async function uidOf(root: string, user: string): Promise<[number, number]> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 4) return [Number(f[2]), Number(f[3])];
  }
  throw new InfraError(`user "${user}" is not in ${root}/etc/passwd (--jail-user)`);
}

class ZfsJailSandbox implements Sandbox {
  private handle: RunHandle | undefined;
  private jailUp = false;
  private gone = false;
  constructor(
    readonly id: string, // the clone's dataset name, which is also the jail's name
    private readonly root: string | undefined,
    private readonly opts: ZfsJailOptions,
    private readonly release: () => void,
    private readonly env: Readonly<Record<string, string>>,
  ) {}

  async describe(): Promise<SandboxDescription> {
    return { kind: 'zfs-jail', snapshot: this.opts.snapshot };
  }

  markJail(): void {
    this.jailUp = true;
  }

  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    const h = await execInJail(this.jailName, this.opts.user, SCRIPT, this.env, onOutput);
    // the script's end ends the jail: what it left running (even outside its process group)
    // must not touch the clone while its artifacts are read
    const done = h.done.then(async (r) => {
      await this.stopJail();
      return r;
    });
    this.handle = {
      done,
      kill: async () => {
        await h.kill();
        await this.stopJail();
      },
    };
    return this.handle;
  }

  get jailName(): string {
    return this.id.split('/').pop()!;
  }

  private async stopJail(): Promise<void> {
    if (!this.jailUp) return;
    this.jailUp = false;
    await removeJail(this.jailName);
  }

  collect() {
    return collectDir(join(this.root!, 'work'));
  }

  async destroy(): Promise<void> {
    if (this.gone) return;
    let first: unknown;
    const step = async (f: () => Promise<void>) => {
      try {
        await f();
      } catch (err) {
        first ??= err;
      }
    };
    if (this.handle) await step(() => this.handle!.kill());
    await step(() => this.stopJail());
    if (this.root) await step(() => unmountDevfs(this.root!));
    await step(() => destroyClone(this.id));
    this.release();
    if (first) throw first instanceof InfraError ? first : new InfraError(String(first), { cause: first });
    this.gone = true;
  }
}

export class ZfsJailBackend implements SandboxBackend {
  readonly name = 'zfs-jail';
  private readonly inUse = new Set<string>();
  /** clones of jobs not yet destroyed: never pruned */
  private readonly live = new Set<string>();
  constructor(
    private readonly opts: ZfsJailOptions,
    private readonly ctx: BackendContext,
  ) {}

  /** not known without asking zfs; the worker's own directory is on the same pool in practice */
  get storagePath(): string {
    return this.ctx.workDir;
  }

  /** jail(8) and zfs accept it whatever the worker's name (sandbox-names.ts) */
  private get prefix(): string {
    return sandboxPrefix(this.ctx.workerId);
  }

  async prepare(job: JobSpec): Promise<Sandbox> {
    const ip = this.opts.ips.find((a) => !this.inUse.has(a));
    if (!ip) throw new InfraError(`no free address left in --jail-ips (${this.opts.ips.length} in use)`);
    this.inUse.add(ip);
    const dataset = `${this.opts.parent}/${sandboxName(this.prefix, job.uuid)}`;
    this.live.add(dataset);
    const release = () => {
      this.inUse.delete(ip);
      this.live.delete(dataset);
    };
    let sandbox = new ZfsJailSandbox(dataset, undefined, this.opts, release, job.env);
    try {
      await createClone(this.opts.snapshot, dataset);
      const root = await cloneMountpoint(dataset);
      sandbox = new ZfsJailSandbox(dataset, root, this.opts, release, job.env);
      await mkdir(join(root, 'etc'), { recursive: true });
      await copyFile(this.opts.resolvConf, join(root, 'etc/resolv.conf'));
      const [uid, gid] = await uidOf(root, this.opts.user);
      await mkdir(join(root, 'work'), { recursive: true, mode: 0o755 });
      await chown(join(root, 'work'), uid, gid);
      await writeFile(join(root, SCRIPT), job.script, { mode: 0o644 });
      // readable by the job's user whatever the worker's own umask (writeFile's mode is masked by it)
      await chmod(join(root, SCRIPT), 0o644);
      await startJail({ name: sandbox.jailName, root, hostname: sandbox.jailName, ip, iface: this.opts.iface });
      sandbox.markJail();
      return sandbox;
    } catch (err) {
      await sandbox.destroy().catch(() => undefined);
      throw err instanceof InfraError ? err : new InfraError(`cannot prepare ${dataset}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** the snapshot jobs are cloned from must exist */
  async check(): Promise<void> {
    if (!(await snapshotExists(this.opts.snapshot))) {
      throw new SandboxConfigError(`zfs snapshot ${this.opts.snapshot} does not exist (fix --zfs-snapshot, or make it: zfs snapshot ${this.opts.snapshot})`);
    }
  }

  sweep(): Promise<string[]> {
    return this.removeLeftovers(() => true);
  }

  /** This worker's jails and clones that no job holds (a destroy that failed half-way). */
  prune(): Promise<string[]> {
    const held = new Set([...this.live].map((d) => d.split('/').pop()!));
    return this.removeLeftovers((name) => !held.has(name));
  }

  private async removeLeftovers(mayGo: (name: string) => boolean): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await listJails(this.prefix)) {
      if (!mayGo(name)) continue;
      await removeJail(name);
      removed.push(`jail ${name}`);
    }
    for (const dataset of await listClones(this.opts.parent, this.prefix)) {
      if (!mayGo(dataset.split('/').pop()!)) continue;
      const root = await cloneMountpoint(dataset).catch(() => undefined);
      if (root) await unmountDevfs(root);
      await destroyClone(dataset);
      removed.push(`clone ${dataset}`);
    }
    return removed;
  }
}

export const zfsJailBackend: BackendFactory = {
  name: 'zfs-jail',
  description: 'a ZFS clone of a snapshot per job with a jail on it (FreeBSD)',
  options: [
    { flag: '--zfs-snapshot', value: 'POOL/FS@SNAP', description: 'snapshot jobs start from, e.g. zroot/poudriere/jails/13amd64@clean (required)' },
    { flag: '--zfs-clone-parent', value: 'POOL/FS', description: 'dataset the clones go under (default: the snapshot dataset\'s parent)' },
    { flag: '--jail-ips', value: 'RANGE', description: 'addresses for jails', default: '127.0.2.2-127.0.2.254' },
    { flag: '--jail-interface', value: 'IF', description: 'interface the addresses are added to', default: 'orb' },
    { flag: '--jail-user', value: 'USER', description: 'user (of the jail\'s passwd) the script runs as', default: 'builder' },
    { flag: '--resolv-conf', value: 'FILE', description: 'copied into each jail', default: '/etc/resolv.conf' },
  ],
  create(options, ctx) {
    const snapshot = options['zfs-snapshot'];
    if (!snapshot || !/^[^@]+\/[^@]*[^/@]@[^@/]+$/.test(snapshot)) {
      throw new Error('the zfs-jail sandbox needs --zfs-snapshot POOL/FS@SNAP');
    }
    const fs = snapshot.split('@')[0]!;
    const parent = options['zfs-clone-parent'] ?? fs.slice(0, fs.lastIndexOf('/'));
    return new ZfsJailBackend(
      {
        snapshot,
        parent,
        ips: expandRange(options['jail-ips'] ?? '127.0.2.2-127.0.2.254'),
        iface: options['jail-interface'] ?? 'orb',
        user: options['jail-user'] ?? 'builder',
        resolvConf: options['resolv-conf'] ?? '/etc/resolv.conf',
      },
      ctx,
    );
  },
};
