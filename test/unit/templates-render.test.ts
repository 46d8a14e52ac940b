// orb-build templates: the original's placeholder files drop in unchanged, each Handlebars
// variable reaches the script, and every mistake in a template fails with its file and line
// instead of producing a script with an empty string in it.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BuilderError } from '../../src/common/errors.js';
import { need } from '../helpers/env.js';
import {
  findTemplate,
  listTemplates,
  renderTemplate,
  shippedTemplatesDir,
  type TemplateVars,
} from '../../src/templates/render.js';

let T = '';
let config = '';
let shipped = '';
test.before.each(() => {
  T = mkdtempSync(join(tmpdir(), 'builder-templates-'));
  config = join(T, 'etc');
  shipped = join(T, 'shipped');
  mkdirSync(config);
  mkdirSync(shipped);
});
test.after.each(() => rmSync(T, { recursive: true, force: true }));

const vars = (platform = 'debian-12'): TemplateVars => ({
  opamPackage: 'hello-unikernel',
  platform,
  job: 'hello-job',
  uuid: '0b7a3c4e-1111-4222-8333-444455556666',
  sourceDateEpoch: 1589138087,
});

const put = (dir: string, platform: string, text: string): string => {
  const path = join(dir, `orb-build.template.${platform}`);
  writeFileSync(path, text);
  return path;
};

/** the BuilderError thrown by fn, failing the test when none is */
function failure(fn: () => unknown): BuilderError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, BuilderError);
    return err as BuilderError;
  }
  assert.unreachable('expected a BuilderError, got a rendered script');
  throw new Error('unreachable');
}

test('a template in the original style (placeholders only) renders unchanged apart from them', () => {
  const original = [
    '#!/bin/sh',
    '',
    'set -ex',
    '',
    "wget -O orb.deb 'https://example.org/orb?platform=%%PLATFORM%%'",
    'repos="default:https://opam.ocaml.org"',
    'orb build --date=1589138087 --out=. --repos=$repos %%OPAM_PACKAGE%% # %%OPAM_PACKAGE%% twice',
    '',
  ].join('\n');
  put(config, 'debian-12', original);
  const r = renderTemplate(vars(), { configDir: config, shippedDir: shipped });
  assert.is(
    r.script,
    original.replace('%%PLATFORM%%', 'debian-12').replaceAll('%%OPAM_PACKAGE%%', 'hello-unikernel'),
  );
  assert.is(r.scriptSha256, createHash('sha256').update(r.script).digest('hex'));
  assert.is(r.template.sha256, createHash('sha256').update(original).digest('hex'));
  assert.is(r.template.source, 'config');
  assert.is(r.template.path, join(config, 'orb-build.template.debian-12'));
});

for (const [name, expected] of [
  ['opam_package', 'hello-unikernel'],
  ['platform', 'debian-12'],
  ['job', 'hello-job'],
  ['uuid', '0b7a3c4e-1111-4222-8333-444455556666'],
  ['source_date_epoch', '1589138087'],
] as const) {
  test(`the Handlebars variable {{${name}}} is the run's ${name}`, () => {
    put(shipped, 'debian-12', `echo "<{{${name}}}>"\n`);
    assert.is(renderTemplate(vars(), { shippedDir: shipped }).script, `echo "<${expected}>"\n`);
  });
}

test('values are not HTML-escaped and "$&" in a value stays literal', () => {
  put(shipped, 'debian-12', 'x={{job}} y=%%OPAM_PACKAGE%%\n');
  const r = renderTemplate({ ...vars(), job: 'a&b<c>', opamPackage: 'p$&q' }, { shippedDir: shipped });
  assert.is(r.script, 'x=a&b<c> y=p$&q\n');
  // a literal {{ in shell (awk, ${{...}}) is written \{{, as the templates README says
  put(shipped, 'debian-12', "awk '\\{{print}}' {{job}}\n");
  assert.is(renderTemplate(vars(), { shippedDir: shipped }).script, "awk '{{print}}' hello-job\n");
});

test('a misspelt variable fails with the file name and line, also inside {{#if}}', () => {
  const file = put(config, 'debian-12', 'set -ex\n\norb build {{opam_pakage}}\n');
  const e = failure(() => renderTemplate(vars(), { configDir: config, shippedDir: shipped }));
  assert.is(e.code, 'BAD_TEMPLATE');
  assert.match(e.message, `${file}:3: unknown variable "opam_pakage"`);

  put(config, 'debian-12', 'a\nb\n{{#if platfrom}}x{{/if}}\n');
  assert.match(failure(() => renderTemplate(vars(), { configDir: config })).message, `${file}:3: unknown variable "platfrom"`);
  put(config, 'debian-12', 'a\n{{job.name}}\n');
  assert.match(failure(() => renderTemplate(vars(), { configDir: config })).message, `${file}:2: "job.name"`);
  put(config, 'debian-12', '{{> header}}\n');
  assert.match(failure(() => renderTemplate(vars(), { configDir: config })).message, `${file}:1: partials`);
  put(config, 'debian-12', 'x\n{{shout job}}\n');
  assert.match(failure(() => renderTemplate(vars(), { configDir: config })).message, `${file}:2: unknown helper "shout"`);
});

test('built-in helpers work with known variables', () => {
  put(shipped, 'debian-12', '{{#if job}}J={{job}}{{/if}}{{#unless uuid}}never{{/unless}} {{lookup this "platform"}}\n');
  assert.is(renderTemplate(vars(), { shippedDir: shipped }).script, 'J=hello-job debian-12\n');
});

test('a missing template names the platform and where it was looked for', () => {
  const e = failure(() => renderTemplate(vars('freebsd-14'), { configDir: config, shippedDir: shipped }));
  assert.is(e.code, 'NO_TEMPLATE');
  assert.match(e.message, 'platform freebsd-14');
  assert.match(e.message, 'orb-build.template.freebsd-14');
  assert.match(e.message, config);
  assert.match(e.message, shipped);
  assert.is(findTemplate('freebsd-14', { configDir: config, shippedDir: shipped }), undefined);
});

test('invalid template syntax fails with the file name and line', () => {
  const file = put(shipped, 'debian-12', 'set -ex\necho {{#if job}}\necho ok\n');
  const e = failure(() => renderTemplate(vars(), { shippedDir: shipped }));
  assert.is(e.code, 'BAD_TEMPLATE');
  assert.match(e.message, new RegExp(`^${file.replace(/[.+]/g, '\\$&')}:\\d+: invalid template: Parse error`));
  put(shipped, 'debian-12', 'one\ntwo {{job}\n');
  assert.match(failure(() => renderTemplate(vars(), { shippedDir: shipped })).message, `${file}:2: invalid template`);
});

test('an unreadable template fails with its file name (no fallback to the shipped one)', () => {
  put(shipped, 'debian-12', 'shipped\n');
  const file = put(config, 'debian-12', 'mine\n');
  chmodSync(file, 0o000);
  const readable = spawnSync('cat', [file]).status === 0; // root reads anything
  if (readable) {
    writeFileSync(file, Buffer.from([0x65, 0x63, 0x68, 0x6f, 0x20, 0xff, 0xfe, 0x0a]));
    chmodSync(file, 0o644);
  }
  const e = failure(() => renderTemplate(vars(), { configDir: config, shippedDir: shipped }));
  assert.is(e.code, 'BAD_TEMPLATE');
  assert.match(e.message, file);
  assert.match(e.message, readable ? 'not valid UTF-8' : 'EACCES');
});

test('a config-dir template overrides the shipped one; the listing says where each comes from', () => {
  put(shipped, 'debian-12', 'shipped {{platform}}\n');
  put(shipped, 'freebsd-14', 'shipped {{platform}}\n');
  put(config, 'debian-12', 'local %%PLATFORM%%\n');
  put(config, 'bad name!', 'ignored\n');
  writeFileSync(join(config, 'README'), 'not a template');
  assert.is(renderTemplate(vars(), { configDir: config, shippedDir: shipped }).script, 'local debian-12\n');
  assert.is(renderTemplate(vars('freebsd-14'), { configDir: config, shippedDir: shipped }).script, 'shipped freebsd-14\n');
  assert.equal(listTemplates({ configDir: config, shippedDir: shipped }), [
    { platform: 'debian-12', path: join(config, 'orb-build.template.debian-12'), source: 'config' },
    { platform: 'freebsd-14', path: join(shipped, 'orb-build.template.freebsd-14'), source: 'shipped' },
  ]);
  // a config dir that does not exist is not an error
  assert.is(listTemplates({ configDir: join(T, 'nope'), shippedDir: shipped }).length, 2);
});

test('an edited template takes effect on the next render', () => {
  put(config, 'debian-12', 'v1\n');
  assert.is(renderTemplate(vars(), { configDir: config }).script, 'v1\n');
  put(config, 'debian-12', 'v2 {{job}}\n');
  const r = renderTemplate(vars(), { configDir: config });
  assert.is(r.script, 'v2 hello-job\n');
  assert.is(r.template.sha256, createHash('sha256').update('v2 {{job}}\n').digest('hex'));
});

test('the shipped templates exist for freebsd-14, debian-12, ubuntu-24.04 and render to valid sh running orb build', () => {
  const listed = listTemplates({ shippedDir: shippedTemplatesDir }).map((t) => t.platform);
  for (const platform of ['freebsd-14', 'debian-12', 'ubuntu-24.04']) {
    assert.ok(listed.includes(platform), `shipped template for ${platform}`);
    const r = renderTemplate(vars(platform));
    assert.is(r.template.source, 'shipped');
    assert.match(r.script, /^#!\/bin\/sh\n/);
    assert.match(r.script, /\norb build .*\\\n.*--date=1589138087 --out=\. .* hello-unikernel\n/);
    assert.match(r.script, `platform=${platform}'`);
    assert.not.match(r.script, /\{\{|%%/);
    const file = join(T, `${platform}.sh`);
    writeFileSync(file, r.script);
    execFileSync('sh', ['-n', file]); // throws on a syntax error
    assert.is(readFileSync(file, 'utf8'), r.script);
    // the template itself is not shell (shellcheck would flag every {{), the rendered script is
    if (need('shellcheck', spawnSync('shellcheck', ['--version']).status === 0, 'apt-get install shellcheck')) {
      const check = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
      assert.is(check.status, 0, `shellcheck ${platform}:\n${check.stdout}${check.stderr}`);
    }
  }
});

test.run();
