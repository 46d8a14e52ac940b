// Reproducibility verdicts and the reports that say what changed. The line diff is checked
// against GNU patch and diff (it must apply, and be as small as diff --minimal's); diffoscope is
// used when installed and skipped with a message otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BuilderError } from '../../src/common/errors.js';
import { compareArtifacts, formatComparison, type ArtifactDigest } from '../../src/repro/compare.js';
import { diffReport, findDiffoscope, firstDifference } from '../../src/repro/diff-report.js';
import { unifiedDiff } from '../../src/repro/line-diff.js';
import { need } from '../helpers/env.js';

let T = '';
test.before.each(() => {
  T = mkdtempSync(join(tmpdir(), 'builder-repro-'));
});
test.after.each(() => rmSync(T, { recursive: true, force: true }));

const art = (path: string, sha: string, size = 10): ArtifactDigest => ({ path, size, sha256: sha.repeat(64).slice(0, 64) });
const file = (name: string, content: string | Buffer): string => {
  const p = join(T, name);
  writeFileSync(p, content);
  return p;
};

test('the same set with every sha256 equal is reproduced, whatever the order', () => {
  assert.equal(compareArtifacts([art('a', '1'), art('b/c', '2')], [art('b/c', '2'), art('a', '1')]), { verdict: 'reproduced' });
  assert.equal(compareArtifacts([], []), { verdict: 'reproduced' });
  assert.equal(formatComparison({ verdict: 'reproduced' }), ['reproduced: every artifact identical']);
});

test('differs lists changed, new and gone artifacts, sorted', () => {
  const c = compareArtifacts(
    [art('same', '1'), art('z-changed', '2'), art('a-changed', '3'), art('gone', '4')],
    [art('same', '1'), art('z-changed', 'f'), art('a-changed', 'e'), art('new', '5')],
  );
  assert.equal(c, { verdict: 'differs', changed: ['a-changed', 'z-changed'], added: ['new'], removed: ['gone'] });
  assert.equal(formatComparison(c), [
    'differs: 2 changed, 1 new, 1 gone',
    '  changed a-changed',
    '  changed z-changed',
    '  new     new',
    '  gone    gone',
  ]);
  // an extra artifact alone, with every shared one identical, is not reproduced
  assert.equal(compareArtifacts([art('a', '1')], [art('a', '1'), art('b', '2')]), { verdict: 'differs', changed: [], added: ['b'], removed: [] });
  // size alone never decides: same digest is the same file
  assert.equal(compareArtifacts([art('a', '1', 5)], [art('a', '1', 5)]).verdict, 'reproduced');
});

test('an artifact listed twice is refused', () => {
  assert.throws(() => compareArtifacts([art('a', '1'), art('a', '2')], []), (e: unknown) => e instanceof BuilderError && /a twice/.test(e.message));
});

test('text artifacts without diffoscope get a unified diff that names the changed line', async () => {
  const a = file('a.txt', 'built by builder\nbuilt at 1700000000123456789\nend\n');
  const b = file('b.txt', 'built by builder\nbuilt at 1700000000987654321\nend\n');
  const r = await diffReport(a, b, { diffoscope: false, labelA: 'run1/stamp.txt', labelB: 'run2/stamp.txt' });
  assert.is(r.tool, 'line-diff');
  assert.is(
    r.text,
    '--- run1/stamp.txt\n+++ run2/stamp.txt\n@@ -1,3 +1,3 @@\n built by builder\n-built at 1700000000123456789\n+built at 1700000000987654321\n end\n',
  );
});

test('a missing final newline shows as in diff -u', async () => {
  const r = await diffReport(file('a', 'x\ny'), file('b', 'x\ny\n'), { diffoscope: false, labelA: 'a', labelB: 'b' });
  assert.is(r.text, '--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n');
});

test('the line diff applies with GNU patch and is as small as diff --minimal, on random edits', () => {
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 40; round++) {
    const a = Array.from({ length: rnd(60) }, () => `line ${rnd(8)}\n`);
    const b = a.slice();
    for (let e = rnd(10); e > 0; e--) {
      const at = rnd(b.length + 1);
      if (rnd(2) && b.length) b.splice(at, 1);
      else b.splice(at, 0, `new ${rnd(5)}\n`);
    }
    const fa = file('a', a.join(''));
    const fb = file('b', b.join(''));
    const d = unifiedDiff(a.join(''), b.join(''), { labelA: 'a', labelB: 'b' });
    assert.ok(d);
    const gnu = spawnSync('diff', ['--minimal', '-u', fa, fb], { encoding: 'utf8' }).stdout;
    const edits = (text: string): number => text.split('\n').filter((l) => /^[-+](?!--|\+\+)/.test(l)).length;
    assert.is(edits(d.text), edits(gnu), `round ${round}: as few edited lines as diff --minimal`);
    if (a.join('') === b.join('')) continue;
    copyFileSync(fa, join(T, 'patched'));
    execFileSync('patch', ['--quiet', '--force', join(T, 'patched'), '-i', file('p.diff', d.text)]);
    assert.is(readFileSync(join(T, 'patched'), 'utf8'), b.join(''), `round ${round}: the diff turns a into b`);
  }
});

test('binary artifacts get the offset of the first differing byte, read in pieces', async () => {
  const big = Buffer.alloc(300_000, 7);
  big[200_001] = 0; // beyond the first few 64 KiB reads
  const a = file('a.bin', Buffer.alloc(300_000, 7));
  const b = file('b.bin', big);
  assert.is(await firstDifference(a, b), 200_001);
  const r = await diffReport(a, b, { diffoscope: false, labelA: 'one', labelB: 'two' });
  assert.is(r.tool, 'first-byte');
  assert.match(r.text, 'first difference at byte offset 200001 (0x30d41)');
  assert.match(r.text, '  one: 00030d40: 07 07 07');
  assert.match(r.text, '  two: 00030d40: 07 00 07');
  // one a prefix of the other
  const c = file('c.bin', Buffer.alloc(1000, 0));
  const d = file('d.bin', Buffer.alloc(5000, 0));
  assert.is(await firstDifference(d, c), 1000);
  assert.match((await diffReport(c, d, { diffoscope: false, labelA: 'c', labelB: 'd' })).text, 'c is a prefix of d: they differ from byte offset 1000');
  // text with a NUL byte is binary
  assert.is((await diffReport(file('n1', 'a\0b\n'), file('n2', 'a\0c\n'), { diffoscope: false })).tool, 'first-byte');
});

test('identical files are reported as identical; a missing file is an error naming it', async () => {
  const a = file('a', 'same\n');
  assert.is((await diffReport(a, file('b', 'same\n'))).tool, 'identical');
  const missing = join(T, 'nope');
  try {
    await diffReport(a, missing, { diffoscope: false });
    assert.unreachable('a missing file must fail');
  } catch (err) {
    assert.instance(err, BuilderError);
    assert.match((err as Error).message, `cannot compare ${missing}: ENOENT`);
  }
});

test('a text diff too large for a line diff falls back to the first byte; reports are capped', async () => {
  const a = Array.from({ length: 3000 }, (_, i) => `a${i}\n`).join('');
  const b = Array.from({ length: 3000 }, (_, i) => `b${i}\n`).join('');
  const r = await diffReport(file('a', a), file('b', b), { diffoscope: false, labelA: 'a', labelB: 'b' });
  assert.is(r.tool, 'first-byte');
  assert.match(r.text, '(too many changed lines for a line diff)');
  assert.match(r.text, 'first difference at byte offset 0');
  const small = await diffReport(file('c', 'x\n'.repeat(500)), file('d', 'y\n'.repeat(500)), { diffoscope: false, maxReportBytes: 300 });
  assert.ok(small.truncated);
  assert.ok(Buffer.byteLength(small.text) < 400);
  assert.match(small.text, /report truncated at 300 bytes\)\n$/);
});

test('with diffoscope installed, its report is used (exit 1 is "differences", not an error)', async () => {
  const tool = findDiffoscope();
  if (!need('diffoscope', tool !== undefined, 'apt-get install diffoscope-minimal; the built-in fallback was tested above') || !tool) return;
  const a = file('a.txt', 'one\ntwo\nthree\n');
  const b = file('b.txt', 'one\nTWO\nthree\n');
  const r = await diffReport(a, b);
  assert.is(r.tool, 'diffoscope');
  assert.match(r.text, '-two');
  assert.match(r.text, '+TWO');
  // a tarball: diffoscope looks inside and names the member that changed
  for (const [dir, content] of [['x', 'stable'], ['y', 'changed']] as const) {
    execFileSync('mkdir', ['-p', join(T, dir, 'pkg')]);
    writeFileSync(join(T, dir, 'pkg', 'data.txt'), content + '\n');
    writeFileSync(join(T, dir, 'pkg', 'same.txt'), 'same\n');
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', join(T, dir), '-cf', join(T, `${dir}.tar`), 'pkg']);
  }
  const t = await diffReport(join(T, 'x.tar'), join(T, 'y.tar'));
  assert.is(t.tool, 'diffoscope');
  assert.match(t.text, 'pkg/data.txt');
  assert.match(t.text, '+changed');
  // a diffoscope that fails or hangs leaves the built-in report, saying why
  const broken = file('broken-diffoscope', '#!/bin/sh\necho boom >&2\nexit 2\n');
  execFileSync('chmod', ['+x', broken]);
  const f = await diffReport(a, b, { diffoscope: broken });
  assert.is(f.tool, 'line-diff');
  assert.match(f.text, 'diffoscope failed (exit 2: boom)');
  const slow = file('slow-diffoscope', '#!/bin/sh\nexec sleep 30\n');
  execFileSync('chmod', ['+x', slow]);
  const s = await diffReport(a, b, { diffoscope: slow, timeoutMs: 300 });
  assert.is(s.tool, 'line-diff');
  assert.match(s.text, 'did not finish within');
});

test.run();
