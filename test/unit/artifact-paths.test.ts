// Artifact paths are normalised once, on the worker, into the one form the server stores (and
// checks again): the record in run.json and the file on disk always name the same thing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArtifactPaths, normaliseArtifactPath } from '../../src/common/names.js';
import type { Message } from '../../src/protocol/messages.js';
import { sendArtifacts } from '../../src/worker/send-artifacts.js';

test('./x, d//x and d/./x become x and d/x; empty, ".", absolute, "..", "x/" and over-long paths are refused', () => {
  assert.equal(normaliseArtifactPath('./x'), { path: 'x' });
  assert.equal(normaliseArtifactPath('d//x'), { path: 'd/x' });
  assert.equal(normaliseArtifactPath('d/./x'), { path: 'd/x' });
  assert.equal(normaliseArtifactPath('./d/.//e/x'), { path: 'd/e/x' });
  const refused = (p: string) => ('problem' in normaliseArtifactPath(p) ? (normaliseArtifactPath(p) as { problem: string }).problem : 'accepted');
  assert.match(refused(''), /empty/);
  assert.match(refused('.'), /names no file/);
  assert.match(refused('./'), /ends with "\/"/);
  assert.match(refused('x/'), /ends with "\/"/);
  assert.match(refused('/etc/passwd'), /absolute/);
  assert.match(refused('a/../b'), /"\.\."/);
  assert.match(refused('a\0b'), /NUL/);
  assert.match(refused('x'.repeat(256)), /longer than 255 bytes \(256\)/);
  assert.is(refused('x'.repeat(255)), 'accepted');
  assert.match(refused('é'.repeat(128)), /longer than 255 bytes \(256\)/, 'bytes, not characters');
  assert.match(refused(`${'d/'.repeat(2048)}x`), /path longer than 4096 bytes/);
});

test('two artifacts on the same normalised path, a file where a directory is and the reverse clash', () => {
  const paths = new ArtifactPaths();
  assert.is(paths.take('d/x'), undefined);
  assert.is(paths.take('y'), undefined);
  assert.match(paths.take('d/x') ?? '', /sent twice/);
  assert.match(paths.take('d') ?? '', /a file where a directory is/);
  assert.match(paths.take('y/z') ?? '', /a directory where a file is \(y is a file\)/);
  assert.is(paths.take('d/z'), undefined);
});

test('the worker sends each artifact under its normalised path and refuses the rest itself', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'builder-paths-'));
  try {
    const file = join(dir, 'f');
    writeFileSync(file, 'data');
    const sent: Message[] = [];
    const port = { send: (m: Message) => (sent.push(m), true), closed: false, drained: async () => undefined };
    const files = ['./x', 'd//y', 'd/./z', 'x', '../up', '.'].map((path) => ({ path, hostPath: file, size: 4, mode: 0o644 }));
    const r = await sendArtifacts(port, 'u', files);
    assert.ok(r);
    assert.equal(sent.flatMap((m) => (m.t === 'artifact' ? [m.path] : [])), ['x', 'd/y', 'd/z']);
    assert.is(r.sent, 3);
    assert.equal(r.refusals.map((x) => x.path), ['x', '../up', '.']);
    assert.match(r.refusals[0]!.reason, /sent twice/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
