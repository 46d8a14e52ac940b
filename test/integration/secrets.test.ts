// Secrets with the real programs: `schedule --secret NAME=@FILE` gives the job the value as an
// environment variable, and the value (plain, base64-encoded, or inside a longer line) shows up
// nowhere: not in the stored console, the followed output, run.json, the script, the server's
// log, or the body uploaded to builder-web.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';
import { BuilderWebStandin } from '../helpers/builder-web-standin.js';

const t = suite('secrets');
let h: Harness;
let standin: BuilderWebStandin | undefined;
t.before.each(() => {
  h = new Harness();
});
t.after.each(async () => {
  await standin?.stop();
  standin = undefined;
  await h.cleanup();
});

const P = 'debian-12';
const SECRET = 'Zq7-s3cr3t-4f1d9c2b88e0';
const forms = [SECRET, Buffer.from(SECRET).toString('base64'), Buffer.from(SECRET).toString('base64').replace(/=+$/, '')];
const leaks = (text: string | Buffer): string[] => {
  const s = Buffer.isBuffer(text) ? text.toString('latin1') : text;
  return forms.filter((f) => s.includes(f));
};

interface RunJson { uuid: string; result: { kind: string; code?: number }; dir: string }

t('a secret reaches its job and is masked in the console, the followed output, run.json, the log and the upload', withTimeout(40_000, async () => {
  standin = await BuilderWebStandin.start();
  const server = await h.server({ args: ['--upload', standin.url(), '--upload-backoff', '0.2'] });
  h.worker(server, P);
  const secretFile = h.path('token');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 }); // as `echo ... > file` writes it
  const script = h.script('uses-token', [
    'sleep 1', // so the follower is attached before the first line
    'echo "token is $TOKEN here"',
    'printf %s "$TOKEN" | base64 -w0; echo',
    'echo "prefix-${TOKEN}-suffix and more"',
    'printf %s "$TOKEN" | sha256sum | cut -d" " -f1 > token.sha256',
    '',
  ].join('\n'));
  const s = await h.client(server, ['schedule', 'uses-token', P, script, '--period', 'never', '--secret', `TOKEN=@${secretFile}`]);
  assert.is(s.code, 0, s.stderr);
  const follow = h.clientProc(server, ['execute', 'uses-token', '--follow']);
  const { code } = await follow.exited;
  assert.is(code, 0, follow.stderr);
  assert.match(follow.stdout, /token is \*\*\* here/);
  assert.match(follow.stdout, /prefix-\*\*\*-suffix and more/);
  assert.equal(leaks(follow.stdout + follow.stderr), [], 'followed output');

  const [run] = await eventually(async () => {
    const x = await h.history<RunJson>(server, 'uses-token');
    return x.length > 0 && x;
  });
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  // the job saw the value itself, not the mask
  assert.is(readFileSync(join(run!.dir, 'artifacts', 'token.sha256'), 'utf8').trim(), createHash('sha256').update(SECRET).digest('hex'));
  const consoleText = readFileSync(join(run!.dir, 'console'), 'utf8');
  assert.match(consoleText, /^\d+ \*\*\*$/m, 'the base64 line is masked whole');
  for (const f of readdirSync(run!.dir)) {
    if (f === 'artifacts') continue;
    assert.equal(leaks(readFileSync(join(run!.dir, f))), [], f);
  }
  await standin.waitForUploads(1);
  const body = standin.received.get(run!.uuid)?.body;
  assert.ok(body, 'uploaded');
  assert.equal(leaks(body!), [], 'upload body');
  assert.ok(body!.includes(Buffer.from('token is *** here')), 'the upload carries the masked console');

  // the server stores it for its own user only, and shows the name, never the value
  const secretsDir = join(server.dir, 'secrets');
  assert.is(statSync(secretsDir).mode & 0o777, 0o700);
  assert.is(statSync(join(secretsDir, 'uses-token.json')).mode & 0o777, 0o600);
  const info = await h.client(server, ['info', '--json']);
  assert.equal(JSON.parse(info.stdout).schedule[0].secrets, ['TOKEN']);
  assert.equal(leaks(info.stdout), []);
  assert.equal(leaks((await h.client(server, ['history', '--json'])).stdout), []);
  assert.equal(leaks((await h.client(server, ['render', 'uses-token'])).stdout), []);
  assert.equal(leaks(server.proc.stdout + server.proc.stderr), [], 'server log');

  assert.is((await h.client(server, ['unschedule', 'uses-token'])).code, 0);
  assert.not.ok(existsSync(join(secretsDir, 'uses-token.json')), 'unschedule deletes the secrets');
}));

t('secrets that cannot be masked or would change the build environment are refused with one line, and nothing is scheduled', withTimeout(30_000, async () => {
  const server = await h.server();
  const script = h.script('s', 'true\n');
  const file = (name: string, value: string): string => {
    writeFileSync(h.path(name), value);
    return h.path(name);
  };
  const cases: Array<[string[], number, RegExp]> = [
    [['--secret', `TOKEN=@${file('short', 'abc\n')}`], 1, /secret TOKEN is shorter than 4 bytes/],
    [['--secret', `PATH=@${file('p', 'long enough')}`], 1, /secret name PATH is reserved/],
    [['--secret', `BUILDER_X=@${file('b', 'long enough')}`], 1, /secret name BUILDER_X is reserved/],
    [['--secret', `lower=@${file('l', 'long enough')}`], 1, /invalid secret name "lower"/],
    [['--secret', `A=@${file('a1', 'long enough')}`, '--secret', `A=@${file('a2', 'long enough')}`], 1, /secret A given twice/],
    [['--secret', 'TOKEN=hunter2-inline'], 2, /--secret must be NAME=@FILE/],
    [['--secret', `TOKEN=@${h.path('missing')}`], 2, /--secret TOKEN: cannot read .*missing: ENOENT/],
  ];
  for (const [flags, code, message] of cases) {
    const r = await h.client(server, ['schedule', 'x', P, script, ...flags]);
    assert.is(r.code, code, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.not.ok(r.stderr.includes('hunter2-inline'), 'a value given inline is not echoed');
  }
  assert.equal((await h.info(server)).schedule, []);
  assert.not.ok(existsSync(join(server.dir, 'secrets', 'x.json')));
}));

t.run();
