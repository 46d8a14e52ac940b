// The hello: wrong tokens, other protocol versions and hostile frames are refused, and the
// server goes on serving everyone else.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type Socket } from 'node:net';
import { writeFileSync, mkdirSync, statSync } from 'node:fs';
import { Harness, withTimeout } from '../helpers/processes.js';
import { encodeFrame } from '../../src/protocol/framing.js';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';
import { FrameReader } from '../../src/protocol/framing.js';
import { serverProof } from '../../src/protocol/auth.js';
import type { ServerHandle } from '../helpers/processes.js';

const t = suite('auth and framing');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

t('the server makes a 0600 token on first start; a wrong token is refused, logged with the address, and changes nothing', withTimeout(20_000, async () => {
  const server = await h.server();
  assert.is(statSync(server.tokenFile).mode & 0o777, 0o600);
  const wrong = h.path('wrong-token');
  writeFileSync(wrong, 'this-is-not-the-token-at-all\n');
  const file = h.path('s.sh');
  writeFileSync(file, 'true\n');
  const r = await h.client(server, ['schedule', 'evil', 'p', file], { tokenFile: wrong });
  assert.is(r.code, 1);
  assert.match(r.stderr, /does not know our token|authentication failed/);
  await server.proc.waitFor(/hello refused|authentication failed/);
  assert.match(server.proc.stderr, /peer=127\.0\.0\.1:\d+/);
  const env = await h.client(server, ['info', '--json'], { tokenFile: '', env: { BUILDER_TOKEN: 'x'.repeat(32) } });
  assert.is(env.code, 1);
  const ok = await h.client(server, ['info', '--json']);
  assert.equal(JSON.parse(ok.stdout).schedule, []);
}));

function rawSocket(port: number) {
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new FrameReader();
  const messages: unknown[] = [];
  socket.on('data', (c: Buffer) => reader.push(c).forEach((f) => messages.push(decodeValue(f))));
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  socket.on('error', () => undefined);
  return { socket, messages, closed };
}

t('a peer speaking another protocol version is told both versions', withTimeout(20_000, async () => {
  const server = await h.server();
  const raw = rawSocket(server.port);
  raw.socket.write(encodeFrame(encodeValue({ t: 'hello', role: 'client', version: 99, nonce: Buffer.alloc(32) })));
  await raw.closed;
  const err = raw.messages[0] as { t: string; message: string };
  assert.is(err.t, 'error');
  assert.is(err.message, 'protocol version mismatch: client speaks version 99, server speaks version 1');
}));

t('an oversized or undecodable frame closes that connection only; other clients go on', withTimeout(20_000, async () => {
  const server = await h.server({ args: ['--max-frame', '65536'] });
  const big = rawSocket(server.port);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1 << 30);
  big.socket.write(header);
  await big.closed;
  await server.proc.waitFor(/connection closed.*frame of 1073741824 bytes announced, maximum is 16384/);
  const junk = rawSocket(server.port);
  junk.socket.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from([0xff, 0xff, 0xff])]));
  await junk.closed;
  await server.proc.waitFor(/undecodable frame|is not a message/);
  const ok = await h.client(server, ['info', '--json']);
  assert.is(ok.code, 0);
  assert.ok(JSON.parse(ok.stdout).schedule);
}));


/**
 * A scripted server on a free port: it answers a hello with a challenge whose proof is right or
 * wrong, records every frame a real builder-client sends, and never sends a welcome by itself.
 */
async function scriptedServer(token: string, proofRight: boolean) {
  const frames: Array<{ t: string; op?: string }> = [];
  const sockets: Socket[] = [];
  let arrived: () => void = () => undefined;
  const server = createServer((socket) => {
    sockets.push(socket);
    const reader = new FrameReader();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        const msg = decodeValue(f) as { t: string; op?: string; nonce?: Buffer };
        frames.push({ t: msg.t, ...(msg.op ? { op: msg.op } : {}) });
        if (msg.t === 'hello') {
          const proof = proofRight ? serverProof(token, msg.nonce!) : Buffer.alloc(32, 7);
          socket.write(encodeFrame(encodeValue({ t: 'challenge', version: 1, nonce: Buffer.alloc(32, 1), proof })));
        }
        arrived();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    frames,
    handle: { port, remote: `127.0.0.1:${port}` } as ServerHandle,
    /** resolves once a frame of type t has arrived */
    async frame(t: string): Promise<void> {
      while (!frames.some((f) => f.t === t)) await new Promise<void>((r) => (arrived = r));
    },
    send: (msg: object) => sockets.forEach((s) => s.write(encodeFrame(encodeValue(msg)))),
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

t('the client sends its request with the auth, before the welcome, and only to a server that proved the token', withTimeout(20_000, async () => {
  const token = 'a-token-of-the-right-length-0123456789';
  const tokenFile = h.path('token');
  writeFileSync(tokenFile, `${token}\n`);

  // a server that knows the token gets the request without having sent a welcome: one round trip
  // fewer than hello, auth, welcome, request
  const good = await scriptedServer(token, true);
  try {
    const run = h.client(good.handle, ['info', '--json'], { tokenFile });
    await good.frame('req');
    assert.equal(good.frames, [{ t: 'hello' }, { t: 'auth' }, { t: 'req', op: 'info' }]);
    // a refusal that comes after the request was sent is still the hello's own error
    good.send({ t: 'error', code: 'AUTH', message: 'authentication failed: wrong token' });
    const r = await run;
    assert.is(r.code, 1);
    assert.match(r.stderr, /server refused: authentication failed: wrong token/);
  } finally {
    good.close();
  }

  // a server whose proof is wrong gets the auth (so a real one can log the failure) and nothing more
  const impostor = await scriptedServer(token, false);
  try {
    const run = h.client(impostor.handle, ['schedule', 'secret-job', 'p', h.script('s', 'echo secret\n')], { tokenFile });
    await impostor.frame('auth');
    impostor.send({ t: 'welcome', server: 'impostor' });
    const r = await run;
    assert.is(r.code, 1);
    assert.match(r.stderr, /does not know our token/);
    assert.equal(impostor.frames, [{ t: 'hello' }, { t: 'auth' }]);
  } finally {
    impostor.close();
  }
}));

t.run();
