// The tar reader is the boundary between a container's files and the worker's disk: archives
// made by GNU tar (ustar, GNU long names, pax) extract right, and hostile entries are refused.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { extractTar, tarOf } from '../../src/worker/sandbox/tar-extract.js';

let T = '';
test.before.each(() => {
  T = mkdtempSync(join(tmpdir(), 'builder-tar-'));
});
test.after.each(() => rmSync(T, { recursive: true, force: true }));

/** an archive without its end-of-archive zero blocks (GNU tar pads to 10 KiB), to concatenate */
function strip(buf: Buffer): Buffer {
  let end = buf.length;
  while (end >= 512 && buf.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  return buf.subarray(0, end);
}

/** feeds the archive in small odd-sized pieces, as a socket would */
const chunks = (buf: Buffer): Readable => Readable.from((function* () {
  for (let i = 0; i < buf.length; i += 777) yield buf.subarray(i, i + 777);
})());

for (const format of ['gnu', 'pax', 'ustar']) {
  test(`GNU tar --format=${format}: files, directories, links inside, long names`, async () => {
    const src = join(T, 'src');
    const long = format === 'ustar' ? 'd'.repeat(90) : 'n'.repeat(180);
    mkdirSync(join(src, 'work/a/b'), { recursive: true });
    writeFileSync(join(src, 'work/a/b/f.txt'), 'hello');
    writeFileSync(join(src, `work/${long}`), Buffer.alloc(10_000, 1));
    symlinkSync('a/b/f.txt', join(src, 'work/link'));
    const tar = execFileSync('tar', [`--format=${format}`, '-C', src, '-c', 'work']);
    const dest = join(T, 'dest');
    mkdirSync(dest);
    const r = await extractTar(chunks(tar), dest);
    assert.equal(r.refusals, []);
    assert.is(readFileSync(join(dest, 'work/a/b/f.txt'), 'utf8'), 'hello');
    assert.is(readFileSync(join(dest, `work/${long}`)).length, 10_000);
    assert.ok(lstatSync(join(dest, 'work/link')).isSymbolicLink());
  });
}

test('hostile entries are refused and nothing is written outside', async () => {
  const src = join(T, 'src');
  mkdirSync(join(src, 'work'), { recursive: true });
  symlinkSync('/tmp', join(src, 'work/abs'));
  symlinkSync('../../..', join(src, 'work/up'));
  symlinkSync('.', join(src, 'work/here'));
  writeFileSync(join(src, 'work/ok'), 'ok');
  const first = strip(execFileSync('tar', ['--format=gnu', '-C', src, '-c', 'work']));
  // entries that try to write through the links, and a path with '..' and an absolute one
  const evil = join(T, 'evil');
  mkdirSync(join(evil, 'work/abs'), { recursive: true });
  mkdirSync(join(evil, 'work/up'), { recursive: true });
  mkdirSync(join(evil, 'work/here'), { recursive: true });
  writeFileSync(join(evil, 'work/here/through'), 'x');
  writeFileSync(join(evil, 'work/abs/pwned'), 'x');
  writeFileSync(join(evil, 'work/up/pwned'), 'x');
  const second = execFileSync('tar', ['--format=gnu', '-C', evil, '-c', 'work/abs/pwned', 'work/up/pwned', 'work/here/through']);
  const dotdot = strip(execFileSync('tar', ['--format=gnu', '-C', evil, '-P', '--transform=s,^work,work/../..,', '-c', 'work/abs/pwned']));
  const absolute = strip(execFileSync('tar', ['--format=gnu', '-P', '-c', join(evil, 'work/up/pwned')]));
  const dest = join(T, 'dest');
  mkdirSync(dest);
  const r = await extractTar(chunks(Buffer.concat([first, dotdot, absolute, second])), dest);
  assert.equal(
    r.refusals.map((x) => x.path).sort(),
    ['work/abs', 'work/up', 'work/../../abs/pwned', evil + '/work/up/pwned', 'work/here/through'].sort(),
  );
  // the refused links were never made, so these landed in plain directories inside dest
  assert.ok(lstatSync(join(dest, 'work/abs/pwned')).isFile());
  assert.ok(lstatSync(join(dest, 'work/up/pwned')).isFile());
  assert.is(readFileSync(join(dest, 'work/ok'), 'utf8'), 'ok');
  assert.not.ok(existsSync('/tmp/pwned'));
  assert.not.ok(existsSync(join(T, 'pwned')));
});

test('tarOf writes what GNU tar reads, with owners and modes', () => {
  const tar = tarOf([
    { name: 'work', type: 'dir', mode: 0o755, uid: 65534, gid: 65534 },
    { name: '.builder-script', type: 'file', mode: 0o644, data: Buffer.from('echo hi\n') },
  ]);
  const list = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar }).toString();
  assert.match(list, /drwxr-xr-x 65534\/65534 .* work\//);
  assert.match(list, /-rw-r--r-- 0\/0 +8 .* \.builder-script/);
});

test.run();
