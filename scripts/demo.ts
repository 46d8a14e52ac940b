// npm run demo: a server and one local worker on loopback, state in ./.builder-demo, one
// example job scheduled, run, followed live, and where its result went. Uses the real programs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const state = join(root, '.builder-demo');
const bin = (name: string): string => join(root, 'dist', 'src', name, 'main.js');
const say = (text: string): void => void process.stderr.write(`\n\x1b[1mdemo:\x1b[0m ${text}\n`);

function start(file: string, args: string[]): ChildProcess {
  return spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
}

async function main(): Promise<void> {
  mkdirSync(join(state, 'etc'), { recursive: true });
  say(`starting builder-server with its state in ${state}`);
  const server = start(bin('server'), ['--dir', join(state, 'server'), '--config-dir', join(state, 'etc'), '--port', '0']);
  const port = await new Promise<number>((ok, fail) => {
    let log = '';
    server.stderr!.on('data', (c: Buffer) => {
      log += c.toString();
      process.stderr.write(c);
      const m = /listening address=127\.0\.0\.1:(\d+)/.exec(log);
      if (m) ok(Number(m[1]));
    });
    server.once('exit', (code) => fail(new Error(`builder-server exited with ${code}`)));
  });
  const remote = `127.0.0.1:${port}`;
  const token = join(state, 'server', 'token');
  say(`starting a local builder-worker for platform "local" (process sandbox) against ${remote}`);
  const worker = start(bin('worker'), ['local', '--remote', remote, '--token-file', token, '--work-dir', join(state, 'worker'), '--name', 'demo-worker']);
  worker.stderr!.pipe(process.stderr);
  const client = (args: string[]) => {
    process.stderr.write(`$ builder-client ${args.join(' ')}\n`);
    return spawnSync(process.execPath, [bin('client'), '--remote', remote, '--token-file', token, ...args], { stdio: 'inherit' }).status;
  };
  try {
    const example = join(root, 'examples', 'hello-build.sh');
    const have = spawnSync(process.execPath, [bin('client'), '--remote', remote, '--token-file', token, 'info', '--json'], { encoding: 'utf8' });
    if (!have.stdout.includes('"hello-build"')) client(['schedule', 'hello-build', 'local', example, '--period', 'never']);
    say('running it now and following it live');
    const status = client(['execute', 'hello-build', '--follow']);
    say(`the job exited with status ${status}; its finished runs:`);
    client(['history', 'hello-build', '--limit', '3']);
    const last = spawnSync(process.execPath, [bin('client'), '--remote', remote, '--token-file', token, 'history', 'hello-build', '--json', '--limit', '1'], { encoding: 'utf8' });
    const dir = (JSON.parse(last.stdout) as Array<{ dir: string }>)[0]?.dir;
    if (!dir || !existsSync(dir)) throw new Error('the result directory is missing');
    say(`the result is stored in ${dir}
      console:   ${join(dir, 'console')}
      script:    ${join(dir, 'script')}
      metadata:  ${join(dir, 'run.json')}
      artifacts: ${join(dir, 'artifacts')}/
      read it with: node dist/src/inspect/main.js ${dir} --console`);
    process.exitCode = status ?? 1;
  } finally {
    worker.kill('SIGTERM');
    server.kill('SIGTERM');
  }
}

main().catch((err) => {
  console.error(`demo: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
