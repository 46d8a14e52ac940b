import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runTool, ToolError } from '../../src/worker/sandbox/run-tool.js';
import { InfraError } from '../../src/worker/sandbox/types.js';

test('a tool that fails is an InfraError naming the command, its exit code and its stderr', async () => {
  const err = await runTool('sh', ['-c', 'echo progress >&2; echo "dataset is busy" >&2; exit 3', 'zfs']).catch((e: unknown) => e);
  assert.instance(err, InfraError);
  assert.instance(err, ToolError);
  const e = err as ToolError;
  assert.is(e.exitCode, 3);
  assert.match(e.stderr, /dataset is busy/);
  assert.match(e.message, /^sh -c .*: exit code 3: progress \/ dataset is busy$/);
});

test('a tool that is not installed is an InfraError saying so', async () => {
  const err = await runTool('builder-no-such-tool', ['x']).catch((e: unknown) => e);
  assert.instance(err, ToolError);
  assert.is((err as ToolError).exitCode, undefined);
  assert.match((err as Error).message, /^builder-no-such-tool x: ENOENT: .*ENOENT/);
});

test('a tool that succeeds gives its stdout; with env it sees only that environment', async () => {
  assert.is(await runTool('sh', ['-c', 'echo "$A-$HOME"'], { A: 'a', PATH: process.env.PATH }), 'a-');
});

test.run();
