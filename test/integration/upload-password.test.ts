// The builder-web password stays off the command line: from --upload-password-file or
// BUILDER_UPLOAD_PASSWORD it authenticates the uploads and never shows in `ps`; a password
// inside the --upload URL still works but is warned about.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { BuilderWebStandin } from '../helpers/builder-web-standin.js';
import { Harness, withTimeout, type ServerHandle } from '../helpers/processes.js';

const PASSWORD = 'Sup3r-s3cret-upl0ad';
const t = suite('upload password');
let h: Harness;
let standin: BuilderWebStandin | undefined;
t.before.each(() => {
  h = new Harness('builder-uppw-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => {
  await standin?.stop();
  standin = undefined;
  await h.cleanup();
});

async function runOneJob(server: ServerHandle): Promise<void> {
  h.worker(server, 'linux');
  const s = await h.client(server, ['schedule', 'up', 'linux', h.script('up', 'echo up\n'), '--period', 'never']);
  assert.is(s.code, 0, s.stderr);
  const e = await h.client(server, ['execute', 'up']);
  assert.is(e.code, 0, e.stderr);
  await standin!.waitForUploads(1);
}

t('the password from a file authenticates the upload and is in no command line', withTimeout(40_000, async () => {
  standin = await BuilderWebStandin.start({ user: 'builder', password: PASSWORD });
  const noPassword = standin.url().replace(/:[^:@/]*@/, '@');
  assert.not.match(noPassword, /Sup3r/);
  const file = h.path('upload-password');
  writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
  const server = await h.server({ args: ['--upload', noPassword, '--upload-password-file', file, '--upload-backoff', '0.2'] });
  await runOneJob(server);
  assert.ok(standin.seen.every((x) => x.authorized), 'every request carried the right credentials');
  const cmdline = readFileSync(`/proc/${server.proc.pid}/cmdline`, 'utf8');
  assert.match(cmdline, /--upload-password-file/);
  assert.not.match(cmdline, /Sup3r/);
  const ps = execFileSync('ps', ['-eo', 'pid,args', '--no-headers'], { encoding: 'utf8' });
  assert.match(ps, new RegExp(`^\\s*${server.proc.pid} .*--upload-password-file`, 'm'));
  assert.not.match(ps, /Sup3r/, 'the password in ps');
  assert.not.match(server.proc.stderr, /Sup3r|holds a password/);
}));

t('BUILDER_UPLOAD_PASSWORD works too; a password in the URL works and is warned about', withTimeout(40_000, async () => {
  standin = await BuilderWebStandin.start({ user: 'builder', password: PASSWORD });
  const byEnv = await h.server({ dir: h.path('env'), args: ['--upload', standin.url().replace(/:[^:@/]*@/, '@'), '--upload-backoff', '0.2'],
    env: { BUILDER_UPLOAD_PASSWORD: PASSWORD } });
  await runOneJob(byEnv);
  assert.not.match(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }), /Sup3r/);
  await h.cleanup();
  h = new Harness('builder-uppw-');
  mkdirSync(h.path('etc'), { recursive: true });
  const inUrl = await h.server({ args: ['--upload', standin.url(), '--upload-backoff', '0.2'] });
  await inUrl.proc.waitFor(/warn: the --upload URL holds a password, which every local user can read in ps/);
  assert.not.match(inUrl.proc.stderr, /Sup3r/);
}));

t.run();
