// The like-for-like baseline's receiving end (bench/upload.ts): a tiny HTTP server, in its own
// process so that its CPU time is its own, that streams each request's body to a file and
// fsyncs it before answering, as builder-server must before it records an artifact. It answers
// 201 with {bytes, ms, userMs, sysMs} for that request (CPU of this process from the request's
// first byte to the answer), removes the file again and then prints `removed N`. Started as
// `node dist/bench/fsync-receiver.js DIR`; prints `listening PORT` on stdout.
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const dir = process.argv[2];
if (!dir) throw new Error('usage: fsync-receiver.js DIR');
let n = 0;

const server = createServer((req, res) => {
  const file = join(dir, `body-${++n}`);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let bytes = 0;
  req.on('data', (c: Buffer) => void (bytes += c.length));
  void (async () => {
    try {
      await pipeline(req, createWriteStream(file));
      const h = await open(file, 'r+');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
      const used = process.cpuUsage(cpu);
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bytes, ms: performance.now() - t0, userMs: used.user / 1000, sysMs: used.system / 1000 }));
    } catch (err) {
      res.writeHead(500);
      res.end(String(err));
    } finally {
      // the bench waits for this line before going on, so that removing 1 GiB (a discard on
      // this file system) does not overlap with what it times next
      await rm(file, { force: true });
      process.stdout.write(`removed ${n}\n`);
    }
  })();
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : '?'}\n`);
});
