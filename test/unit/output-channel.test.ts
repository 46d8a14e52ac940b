// The job's output channel (src/worker/sandbox/output-channel.ts, used by spawn-group.ts): one
// socket shared by stdout and stderr, made in a directory only this user enters, and the
// directories of killed workers removed. The order of merged output over every backend is
// checked by the sandbox contract (test/integration/sandbox-contract.test.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { outputChannels } from '../../src/worker/sandbox/output-channel.js';
import { spawnGroup } from '../../src/worker/sandbox/spawn-group.js';

test('a killed worker\'s output directory is removed; ours is 0700; a job writes stdout and stderr in one stream', async () => {
  // the pid of a process that has ended stands for a worker killed with -9
  const dead = spawnSync('/bin/true').pid!;
  const left = join(tmpdir(), `builder-output-${dead}-test`);
  mkdirSync(join(left, 'inner'), { recursive: true });
  const pair = await outputChannels.pair();
  pair.childEnd.destroy();
  pair.ourEnd.destroy();
  assert.is(existsSync(left), false, 'the dead worker\'s directory is gone');
  const mine = readdirSync(tmpdir()).filter((n) => n.startsWith(`builder-output-${process.pid}-`));
  assert.is(mine.length, 1);
  assert.is(statSync(join(tmpdir(), mine[0]!)).mode & 0o777, 0o700);

  let out = '';
  const h = await spawnGroup({ file: '/bin/sh', args: ['-c', 'echo a; echo b >&2; echo c; umask'], cwd: '/', umask: '027' }, (c) => (out += c));
  const { status } = await h.done;
  assert.equal(status, { kind: 'exited', code: 0 });
  assert.is(out, 'a\nb\nc\n0027\n');
  assert.is.not(process.umask(), 0o027, 'the worker keeps its own umask');
});

test.run();
