// A secret never shows in stored or observed output: as itself, in the middle of a line, base64
// encoded (standard, url-safe, and at any alignment inside a longer base64 string, as
// `printf 'user:%s' "$S" | base64` produces), or one line of a multi-line secret.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeMasker, MIN_SECRET_BYTES } from '../../src/secrets/mask.js';

const SECRET = 'hunter2>?>?~~token-Zq9';

/** every 4-character window of the base64 characters that carry only the secret's bits */
function secretWindows(prefix: Buffer, secret: Buffer, suffix: Buffer): string[] {
  const enc = Buffer.concat([prefix, secret, suffix]).toString('base64');
  const first = Math.ceil((8 * prefix.length) / 6);
  const end = Math.floor((8 * (prefix.length + secret.length)) / 6);
  const core = enc.slice(first, end);
  const out: string[] = [];
  for (let i = 0; i + 4 <= core.length; i++) out.push(core.slice(i, i + 4));
  return out;
}

test('the value is masked in the middle of a line, every time it occurs, bytes around it kept', () => {
  const m = makeMasker([SECRET, 'second-secret']);
  const line = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(` curl -H "Authorization: ${SECRET}" x; echo ${SECRET}second-secret.`)]);
  const out = m.mask(line);
  assert.equal(out, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(' curl -H "Authorization: ***" x; echo ***.')]));
  assert.is(m.maskText(`a${SECRET}b`), 'a***b');
});

test('a line without secrets comes back as the same Buffer', () => {
  const m = makeMasker([SECRET]);
  const line = Buffer.from('nothing to hide here, hunter2 is not the whole secret');
  assert.ok(m.mask(line) === line);
});

test('standard and url-safe base64, padded or not, are masked entirely', () => {
  const m = makeMasker([SECRET]);
  const std = Buffer.from(SECRET).toString('base64');
  const url = Buffer.from(SECRET).toString('base64url');
  assert.ok(/[+/]/.test(std), `the test secret exercises the url-safe alphabet (its base64 has + or /): ${std}`);
  assert.is(m.maskText(`token=${std};`), 'token=***;');
  assert.is(m.maskText(`token=${std.replace(/=+$/, '')};`), 'token=***;');
  assert.is(m.maskText(`https://x/?t=${url}&a=1`), 'https://x/?t=***&a=1');
});

test('inside a longer base64 string, at every alignment, nothing that encodes only the secret survives', () => {
  const secret = Buffer.from(SECRET);
  const m = makeMasker([secret]);
  for (let p = 0; p < 7; p++) {
    for (let s = 0; s < 4; s++) {
      const prefix = Buffer.from('user:xyzw'.slice(0, p));
      const suffix = Buffer.from('!end'.slice(0, s));
      for (const enc of ['base64', 'base64url'] as const) {
        const b64 = Buffer.concat([prefix, secret, suffix]).toString(enc);
        const out = m.maskText(`Authorization: Basic ${b64} (sent)`);
        assert.match(out, '***', `prefix ${p}, suffix ${s}, ${enc}`);
        const windows = secretWindows(prefix, secret, suffix).map((w) => (enc === 'base64url' ? w.replace(/\+/g, '-').replace(/\//g, '_') : w));
        for (const w of windows) assert.not.match(out, w, `prefix ${p}, suffix ${s}, ${enc}: "${w}" of the secret is visible in ${out}`);
      }
    }
  }
});

test('what the real base64 tool prints for a credential pair is masked', () => {
  const m = makeMasker([SECRET]);
  for (const fmt of ['%s', 'user:%s', 'ab:%s\n', 'x%sy']) {
    const printed = execFileSync('sh', ['-c', `printf '${fmt}' "$S" | base64 -w0`], { env: { PATH: process.env.PATH ?? '', S: SECRET }, encoding: 'utf8' });
    const out = m.maskText(`+ echo ${printed}`);
    assert.match(out, '***', `${fmt}: ${printed}`);
    const prefix = Buffer.from(fmt.split('%s')[0] ?? '');
    for (const w of secretWindows(prefix, Buffer.from(SECRET), Buffer.from(''))) assert.not.match(out, w);
  }
});

test('each line of a multi-line secret (a key file) is masked on its own', () => {
  const pem = '-----BEGIN TEST KEY-----\nMC4CAQAwBQYDK2VwBCIEIKf4kq\nZz1x9nQ2vLrT7YbHc3wq==\n-----END TEST KEY-----\n';
  const m = makeMasker([pem]);
  assert.is(m.maskText('MC4CAQAwBQYDK2VwBCIEIKf4kq'), '***');
  assert.is(m.maskText('> Zz1x9nQ2vLrT7YbHc3wq== <'), '> *** <');
});

test(`secrets shorter than ${MIN_SECRET_BYTES} bytes are ignored (and counted), longer ones still work`, () => {
  const m = makeMasker(['abc', '', 'x', 'abcd']);
  assert.is(m.ignored, 3);
  assert.is(m.maskText('abc x 1 abcd'), 'abc x 1 ***');
  assert.is(makeMasker([]).maskText('anything'), 'anything');
});

test('overlapping or adjacent matches become one mask, so the stars do not tell a length', () => {
  const m = makeMasker(['abcdef', 'defghi']);
  assert.is(m.maskText('[abcdefghi]'), '[***]');
  assert.is(m.maskText('[abcdefabcdef]'), '[***]');
});

test.run();
