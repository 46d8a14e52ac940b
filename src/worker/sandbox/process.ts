// The trusted-use backend: a fresh temporary directory per job on the worker's own host.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collectDir } from './collect-dir.js';
import { killGroup, spawnGroup } from './spawn-group.js';
import type { BackendContext, BackendFactory, JobSpec, RunHandle, Sandbox, SandboxBackend } from './types.js';
import { InfraError } from './types.js';

class ProcessSandbox implements Sandbox {
  private handle: RunHandle | undefined;
  constructor(readonly id: string, private readonly dir: string, private readonly script: string) {}

  private get workDir(): string {
    return join(this.dir, 'work');
  }

  async start(onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
    this.handle = await spawnGroup({ file: '/bin/sh', args: [this.script], cwd: this.workDir }, onOutput);
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

class ProcessBackend implements SandboxBackend {
  readonly name = 'process';
  constructor(private readonly root: string, private readonly ctx: BackendContext) {}

  get storagePath(): string {
    return this.root;
  }

  async prepare(job: JobSpec): Promise<Sandbox> {
    const dir = join(this.root, job.uuid);
    try {
      // the script lives beside the job directory, so nothing but the job's own files is collected
      await mkdir(join(dir, 'work'), { recursive: true });
      const script = join(dir, 'script.sh');
      await writeFile(script, job.script, { mode: 0o700 });
      return new ProcessSandbox(dir, dir, script);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw new InfraError(`cannot prepare job directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  async sweep(): Promise<string[]> {
    await mkdir(this.root, { recursive: true });
    const removed: string[] = [];
    for (const name of await readdir(this.root)) {
      const dir = join(this.root, name);
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
    return new ProcessBackend(join(ctx.workDir, 'jobs'), ctx);
  },
};

export { killGroup };
