// SHA-256 of artifact data on a thread of its own, so that the event loop that moves the bytes
// (the worker's, which reads and sends them; the server's, which receives and writes them) does
// not also spend some 0.5-0.8 s per GiB hashing them (bench/upload.ts). The data is never copied
// to the thread: it hashes the very buffer that is sent or written, a SharedArrayBuffer used
// again once both are done with it.
//
// The thread's code is a string evaluated by the Worker, not a file: the programs are also
// bundled into one file each (scripts/bundle.ts), where a script found by its path would not be.
// It needs only node's own modules. One thread serves every artifact, in the order of updates.
import { Worker } from 'node:worker_threads';

const THREAD = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let h = hashes.get(m.id);
    if (!h) hashes.set(m.id, (h = createHash('sha256')));
    h.update(new Uint8Array(m.data, 0, m.length));
    parentPort.postMessage({ n: m.n });
  } else if (m.op === 'digest') {
    const h = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    parentPort.postMessage({ n: m.n, digest: h.digest('hex') });
  } else if (m.op === 'drop') {
    hashes.delete(m.id);
  }
});
`;

interface Waiting {
  resolve(digest: string | undefined): void;
  reject(err: Error): void;
}

let thread: Worker | undefined;
let nextN = 0;
let nextId = 0;
const waiting = new Map<number, Waiting>();

function start(): Worker {
  if (thread) return thread;
  const t = new Worker(THREAD, { eval: true });
  t.unref();
  t.on('message', (m: { n: number; digest?: string }) => {
    const w = waiting.get(m.n);
    waiting.delete(m.n);
    w?.resolve(m.digest);
  });
  const fail = (err: Error): void => {
    if (thread === t) thread = undefined; // the next artifact starts a new one
    for (const w of waiting.values()) w.reject(new Error(`the hashing thread failed: ${err.message}`));
    waiting.clear();
  };
  t.on('error', fail);
  t.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
  thread = t;
  return t;
}

function ask(msg: Record<string, unknown>): Promise<string | undefined> {
  const t = start();
  const n = nextN++;
  return new Promise((resolve, reject) => {
    waiting.set(n, { resolve, reject });
    t.postMessage({ ...msg, n });
  });
}

/** One running SHA-256 on the thread. */
export class ThreadHash {
  private readonly id = nextId++;
  /** the thread that holds this hash: one that failed took it along */
  private on: Worker | undefined;

  /** Hashes data[0, length); data must stay unchanged until this resolves. */
  update(data: SharedArrayBuffer, length: number): Promise<void> {
    if (this.on !== undefined && this.on !== start()) return Promise.reject(new Error('the hashing thread failed meanwhile'));
    this.on = start();
    return ask({ op: 'update', id: this.id, data, length }).then(() => undefined);
  }

  /** The hex digest of everything updated so far, in order. */
  async digest(): Promise<string> {
    if (this.on !== undefined && this.on !== start()) throw new Error('the hashing thread failed meanwhile');
    return (await ask({ op: 'digest', id: this.id }))!;
  }

  /** Forgets the hash (an artifact abandoned). */
  drop(): void {
    thread?.postMessage({ op: 'drop', id: this.id });
  }
}

/** A buffer the thread can read without a copy. */
export const sharedBuffer = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size));
