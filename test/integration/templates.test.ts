// orb-build templates with the real programs: the original's placeholders, each Handlebars
// variable, a template that cannot be rendered failing its run with FILE:LINE, platforms
// without a template, an edit between two runs, `render`, `templates`, and SOURCE_DATE_EPOCH.
// Platforms here have no shipped template (alpine-3, openbsd-7), so only --config-dir counts,
// and no shipped template (which would install orb) ever runs on this machine.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';

const t = suite('templates');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

interface RunJson { uuid: string; job: string; platform: string; attempt: number; result: { kind: string; code?: number; message?: string; infra?: boolean }; dir: string }

const P = 'alpine-3';
const templateFile = (platform = P): string => h.path('etc', `orb-build.template.${platform}`);
const writeTemplate = (body: string, platform = P): string => {
  writeFileSync(templateFile(platform), body);
  return templateFile(platform);
};

async function runs(server: ServerHandle, job: string, n = 1): Promise<RunJson[]> {
  return eventually(async () => {
    const x = await h.history<RunJson>(server, job);
    return x.length >= n && x;
  }, 20_000, `${n} finished run(s) of ${job}`);
}
const consoleOf = (run: RunJson): string => readFileSync(join(run.dir, 'console'), 'utf8');

t('a template in the original\'s style (its placeholders only) renders and runs', withTimeout(30_000, async () => {
  writeTemplate('#!/bin/sh\necho "orb build --out=. %%OPAM_PACKAGE%% on %%PLATFORM%%"\n');
  const server = await h.server();
  h.worker(server, P);
  const r = await h.client(server, ['orb-build', 'solo5', 'solo5-bindings-hvt']);
  assert.is(r.code, 0, r.stderr);
  const [run] = await runs(server, 'solo5');
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  assert.match(consoleOf(run!), /orb build --out=\. solo5-bindings-hvt on alpine-3/);
  assert.is(readFileSync(join(run!.dir, 'script'), 'utf8'), '#!/bin/sh\necho "orb build --out=. solo5-bindings-hvt on alpine-3"\n');
}));

t('each Handlebars variable appears in the rendered script, and SOURCE_DATE_EPOCH reaches the job', withTimeout(30_000, async () => {
  writeTemplate([
    'echo "pkg={{opam_package}}"', 'echo "platform={{platform}}"', 'echo "job={{job}}"', 'echo "uuid={{uuid}}"',
    'echo "sde={{source_date_epoch}}"', 'echo "env-sde=$SOURCE_DATE_EPOCH"', '',
  ].join('\n'));
  const server = await h.server();
  h.worker(server, P);
  const r = await h.client(server, ['orb-build', 'vars', 'mirage-skeleton', '--source-date-epoch', '1700000000']);
  assert.is(r.code, 0, r.stderr);
  const [run] = await runs(server, 'vars');
  const text = consoleOf(run!);
  for (const want of ['pkg=mirage-skeleton', 'platform=alpine-3', 'job=vars', `uuid=${run!.uuid}`, 'sde=1700000000', 'env-sde=1700000000']) {
    assert.ok(text.includes(want), `${want} in\n${text}`);
  }
  const info = await h.info(server);
  assert.is(info.schedule.find((j: { name: string }) => j.name === 'vars').sourceDateEpoch, 1_700_000_000);
}));

t('SOURCE_DATE_EPOCH defaults to the job\'s creation time and stays the same across runs; a bad value is a usage error naming the flag', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, P);
  const file = h.script('sde', 'echo "sde=$SOURCE_DATE_EPOCH"\n');
  for (const bad of ['abc', '-5', '1e9', '99999999999999']) {
    const r = await h.client(server, ['schedule', 'x', P, file, '--source-date-epoch', bad]);
    assert.is(r.code, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--source-date-epoch/);
  }
  const before = Math.floor(Date.now() / 1000);
  assert.is((await h.client(server, ['schedule', 'sde', P, file])).code, 0);
  const after = Math.floor(Date.now() / 1000);
  const [first] = await runs(server, 'sde');
  await h.client(server, ['execute', 'sde']);
  const both = await runs(server, 'sde', 2);
  const seen = both.map((r) => /sde=(\d+)/.exec(consoleOf(r))?.[1]);
  assert.is(seen[0], seen[1], 'the same on every run');
  const sde = Number(seen[0]);
  assert.ok(sde >= before && sde <= after, `${sde} is the creation time (${before}..${after})`);
  assert.ok(first);
}));

t('a misspelt variable or invalid syntax fails that run with the template\'s FILE:LINE, once, not as an infrastructure failure', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, P);
  const file = writeTemplate('#!/bin/sh\necho {{opam_package}}\necho {{opam_pakage}}\n');
  assert.is((await h.client(server, ['orb-build', 'typo', 'solo5'])).code, 0);
  const [run] = await runs(server, 'typo');
  assert.is(run!.result.kind, 'failed');
  assert.is(run!.result.infra, false);
  assert.match(run!.result.message ?? '', `${file}:3: unknown variable "opam_pakage"`);
  assert.not.ok(readFileSync(join(run!.dir, 'script'), 'utf8').includes('echo \n'), 'no script with an empty string in it');

  writeTemplate('#!/bin/sh\n\n{{#if platform}}\necho unclosed\n');
  await h.client(server, ['execute', 'typo']);
  const [latest] = await runs(server, 'typo', 2);
  assert.is(latest!.result.kind, 'failed');
  assert.match(latest!.result.message ?? '', new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+: invalid template`));
  // neither run is retried: the history stays at two, and the queue is empty
  const info = await h.info(server);
  assert.equal(info.queues[P], []);
  assert.is((await h.history(server, 'typo')).length, 2);
}));

t('a platform without a template gets no run; `templates` shows which platforms have one and from where', withTimeout(30_000, async () => {
  writeTemplate('echo hi\n');
  const server = await h.server();
  assert.is((await h.client(server, ['orb-build', 'both', 'solo5'])).code, 0);
  h.worker(server, P);
  h.worker(server, 'openbsd-7');
  const [run] = await runs(server, 'both');
  assert.is(run!.platform, P);
  await server.proc.waitFor(/no orb-build template for this platform.*platform=openbsd-7|platform=openbsd-7.*no orb-build template/);

  const r = await h.client(server, ['templates', '--json']);
  assert.is(r.code, 0, r.stderr);
  const data = JSON.parse(r.stdout) as { templates: Array<{ platform: string; source: string; path: string }>; without: string[] };
  const by = Object.fromEntries(data.templates.map((x) => [x.platform, x]));
  assert.equal(by[P], { platform: P, source: 'config', path: templateFile() });
  for (const shipped of ['debian-12', 'freebsd-14', 'ubuntu-24.04']) assert.is(by[shipped]?.source, 'shipped', shipped);
  assert.not.ok(by['openbsd-7']);
  assert.equal(data.without, ['openbsd-7']);
  const text = await h.client(server, ['templates']);
  assert.match(text.stdout, /alpine-3\s+config dir\s+\S+orb-build\.template\.alpine-3/);
  assert.match(text.stdout, /without a template.*openbsd-7/);
  assert.is((await h.history(server, 'both')).length, 1);
}));

t('a template edited between two runs takes effect on the next', withTimeout(30_000, async () => {
  writeTemplate('echo "version one of %%OPAM_PACKAGE%%"\n');
  const server = await h.server();
  h.worker(server, P);
  await h.client(server, ['orb-build', 'edit', 'solo5']);
  await runs(server, 'edit');
  writeTemplate('echo "version two of {{opam_package}}"\n');
  await h.client(server, ['execute', 'edit']);
  const [second, first] = await runs(server, 'edit', 2);
  assert.match(consoleOf(first!), /version one of solo5/);
  assert.match(consoleOf(second!), /version two of solo5/);
}));

t('`render` prints the script a job would run now, without running it', withTimeout(30_000, async () => {
  const server = await h.server();
  writeTemplate('echo {{opam_package}} {{platform}} {{job}} {{uuid}} {{source_date_epoch}}\n');
  await h.client(server, ['orb-build', 'shown', 'solo5', '--period', 'never', '--source-date-epoch', '42']);
  const r = await h.client(server, ['render', 'shown', '--platform', P]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'echo solo5 alpine-3 shown 00000000-0000-0000-0000-000000000000 42\n');
  // every platform with a template, the shipped ones too
  const all = JSON.parse((await h.client(server, ['render', 'shown', '--json'])).stdout) as { scripts: Array<{ platform: string; script?: string }> };
  assert.ok(all.scripts.some((s) => s.platform === 'debian-12' && /--out=\. --repos="\$repos" solo5$/m.test(s.script ?? '')));

  const file = h.script('plain', 'echo plain script\n');
  await h.client(server, ['schedule', 'plain', P, file, '--period', 'never']);
  const plain = await h.client(server, ['render', 'plain']);
  assert.is(plain.stdout, 'echo plain script\n');

  const bad = writeTemplate('echo {{nope}}\n');
  const failed = await h.client(server, ['render', 'shown', '--platform', P]);
  assert.is(failed.code, 1);
  assert.match(failed.stderr, `${bad}:1: unknown variable "nope"`);
  assert.equal(await h.history(server), [], 'nothing ran');
}));

t.run();
