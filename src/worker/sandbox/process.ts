// The trusted-use backend: a fresh temporary directory per job on the worker's own host.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UMASK } from '../build-env.js';
import { collectDir } from './collect-dir.js';
import { killGroup, spawnGroup } from './spawn-group.js';
import type { BackendFactory, JobSpec, RunHandle, Sandbox, SandboxBackend } from './types.js';
import { InfraError } from './types.js';

class ProcessSandbox implements Sandbox {
  private handle: RunHandle | undefined;
  constructor(
    readonly id: string,
    private readonly dir: string,
    private readonly script: string,
    private readonly env: Readonly<Record<string, string>>,
  ) {}

  private get workDir(): string {
    return join(this.dir, 'work');
  }

  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    // the job's environment only, never the worker's; the umask is set before the script's first line
    this.handle = await spawnGroup({ file: '/bin/sh', args: [this.script], umask: UMASK, cwd: this.workDir, env: { ...this.env } }, onOutput);
    return this.handle;
  }

  collect() {
    return collectDir(this.workDir);
  }

  async destroy(): Promise<void> {
    if (this.handle) await this.handle.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Process groups whose leader runs a script of one of these job directories: what a worker
 * killed with -9 left running. The leader runs "/bin/sh DIR/script.sh" for the job's whole
 * life, wherever the script cd's, which is how it is recognised (never by a stored pid that may
 * have been reused).
 */
async function leftoverGroups(dirs: string[]): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const scripts = new Map(dirs.map((d) => [join(d, 'script.sh'), d]));
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    return found;
  }
  for (const pid of pids) {
    try {
      const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const dir = args.map((a) => scripts.get(a)).find((d) => d !== undefined);
      if (!dir) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgid > 1) found.set(dir, pgid);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

class ProcessBackend implements SandboxBackend {
  readonly name = 'process';
  constructor(private readonly root: string) {}

  get storagePath(): string {
    return this.root;
  }

  async prepare(job: JobSpec): Promise<Sandbox> {
    const dir = join(this.root, job.uuid);
    try {
      // the script lives beside the job directory, so nothing but the job's own files is collected;
      // made without the thread pool: two small local writes cost less than two trips to it
      mkdirSync(join(dir, 'work'), { recursive: true });
      const script = join(dir, 'script.sh');
      writeFileSync(script, job.script, { mode: 0o700 });
      return new ProcessSandbox(dir, dir, script, job.env);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw new InfraError(`cannot prepare job directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  async sweep(): Promise<string[]> {
    await mkdir(this.root, { recursive: true });
    const removed: string[] = [];
    const dirs = (await readdir(this.root)).map((name) => join(this.root, name));
    const groups = await leftoverGroups(dirs);
    for (const dir of dirs) {
      const pgid = groups.get(dir);
      if (pgid !== undefined) {
        killGroup(pgid);
        removed.push(`process group ${pgid} of ${dir}`);
      }
      await rm(dir, { recursive: true, force: true });
      removed.push(`job directory ${dir}`);
    }
    return removed;
  }
}

export const processBackend: BackendFactory = {
  name: 'process',
  description: 'a fresh temporary directory on this host per job (no isolation: trusted scripts only)',
  options: [],
  create(_options, ctx) {
    return new ProcessBackend(join(ctx.workDir, 'jobs'));
  },
};

