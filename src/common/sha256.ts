// SHA-256 of a stream of chunks. Node's own sha256 runs at about 200 MB/s on machines where
// its bundled OpenSSL does not use the CPU's SHA instructions, which made hashing, not the
// network, the limit for big artifacts. For big inputs the chunks are piped to an `openssl`
// process instead (over 1 GB/s with SHA-NI, and on the other core); small ones stay in-process,
// where starting a process would cost more than it saves.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const BIG = 16 * 1024 * 1024;

export interface Sha256 {
  /** resolves when the chunk has been taken (callers may await it for back-pressure) */
  update(chunk: Buffer): Promise<void> | void;
  digest(): Promise<string>;
}

let opensslPath: string | null | undefined;
function findOpenssl(): string | null {
  if (opensslPath !== undefined) return opensslPath;
  opensslPath = null;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, 'openssl'), constants.X_OK);
      opensslPath = join(dir, 'openssl');
      break;
    } catch {
      // not here
    }
  }
  return opensslPath;
}

function inProcess(): Sha256 {
  const h = createHash('sha256');
  return { update: (c) => void h.update(c), digest: async () => h.digest('hex') };
}

function viaOpenssl(bin: string): Sha256 {
  const child = spawn(bin, ['dgst', '-sha256', '-r'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  child.stdin.on('error', () => undefined);
  return {
    update(chunk) {
      if (child.stdin.write(chunk)) return;
      return new Promise<void>((resolve) => child.stdin.once('drain', resolve));
    },
    async digest() {
      child.stdin.end();
      const code = await exited;
      const hex = /^[0-9a-f]{64}/.exec(out)?.[0];
      if (code !== 0 || !hex) throw new Error(`openssl dgst failed (exit ${code})`);
      return hex;
    },
  };
}

/** A hasher suited to an input of about `size` bytes. */
export function sha256For(size: number): Sha256 {
  const bin = size >= BIG ? findOpenssl() : null;
  return bin ? viaOpenssl(bin) : inProcess();
}
