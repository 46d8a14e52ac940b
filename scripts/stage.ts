// npm run stage -- DESTDIR [--prefix PREFIX] [--system linux|freebsd]
//
// Builds the installable tree packagers expect under DESTDIR, from the compiled tree (run
// `npm run build` first; `npm run stage` does):
//
//   PREFIX/bin/builder-{server,worker,client,inspect}   sh launchers (find node, check its version)
//   PREFIX/lib/builder/                                  package.json, launch.cjs, dist/bundle/bin/*.cjs
//                                                        (what the launchers run), dist/src/**.js,
//                                                        node_modules (production only), templates/
//   PREFIX/share/man/man1/builder-*.1.gz                 each program's --help as a man page
//   PREFIX/share/doc/builder/                            README.md, examples/
//   linux:   PREFIX/lib/systemd/system/*.service, PREFIX/lib/{sysusers,tmpfiles}.d/builder.conf,
//            /etc/default/builder, /etc/default/builder-worker
//   freebsd: PREFIX/etc/rc.d/{builder,builder_worker}, PREFIX/etc/newsyslog.conf.d/builder.conf,
//            PREFIX/share/examples/builder/builder.conf.sample
//
// Reproducible: every entry gets the same mtime (SOURCE_DATE_EPOCH, else the last commit's
// time, else 0), modes are normalised to 0755/0644, and nothing depends on the order the file
// system lists directories in. The same tree staged twice gives the same bytes.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { BUNDLE_DIR } from './bundle.js';
import { SERVER_NODE_FLAGS } from '../src/server/node-flags.js';

export type System = 'linux' | 'freebsd';
/** packaging/systemd/ units installed on Linux: the server, and a worker unit per sandbox kind */
export const systemdUnits = ['builder.service', 'builder-worker@.service', 'builder-worker-btrfs@.service', 'builder-worker-process@.service'] as const;
export const programs = ['server', 'worker', 'client', 'inspect'] as const;

export interface StageOptions {
  destdir: string;
  prefix: string;
  system: System;
  /** Seconds since the epoch given to every staged entry. */
  epoch: number;
}

// Compiled to dist/scripts/stage.js: the repository root is two levels up.
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const repo = (...parts: string[]): string => join(repoRoot, ...parts);

export function packageVersion(): string {
  return (JSON.parse(readFileSync(repo('package.json'), 'utf8')) as { version: string }).version;
}

/** SOURCE_DATE_EPOCH, else the time of the last commit, else 0: never the clock. */
export function sourceDateEpoch(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') {
    if (!/^\d+$/.test(env)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds, got "${env}"`);
    return Number(env);
  }
  const git = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: repoRoot, encoding: 'utf8' });
  const t = git.status === 0 ? git.stdout.trim() : '';
  return /^\d+$/.test(t) ? Number(t) : 0;
}

class Tree {
  constructor(readonly root: string) {}

  path(rel: string): string {
    return join(this.root, rel);
  }

  write(rel: string, data: string | Buffer, mode = 0o644): void {
    const p = this.path(rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
    chmodSync(p, mode);
  }

  copy(from: string, rel: string): void {
    const st = statSync(from);
    const p = this.path(rel);
    mkdirSync(dirname(p), { recursive: true });
    copyFileSync(from, p);
    // Only the executable bit survives from the source: umask and checkout modes vary.
    chmodSync(p, st.mode & 0o111 ? 0o755 : 0o644);
  }

  /** Copies a directory, skipping entries for which skip(relative path) says so. */
  copyDir(from: string, rel: string, skip: (r: string, isDir: boolean) => boolean = () => false): void {
    for (const r of walk(from, (d) => skip(d, true))) {
      const src = join(from, r);
      const st = lstatSync(src);
      if (!st.isDirectory() && skip(r, false)) continue;
      if (st.isDirectory()) mkdirSync(this.path(join(rel, r)), { recursive: true });
      else if (st.isFile()) this.copy(src, join(rel, r));
      else throw new Error(`stage: ${src}: only files and directories can be staged (a link or device?)`);
    }
  }
}

/** Every entry under dir, relative, sorted, directories before what is in them. */
export function walk(dir: string, skipDir: (r: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    const names = readdirSync(join(dir, rel)).sort();
    for (const n of names) {
      const r = rel === '' ? n : join(rel, n);
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) {
        if (skipDir(r)) continue;
        out.push(r);
        visit(r);
      } else {
        out.push(r);
      }
    }
  };
  visit('');
  return out;
}

// Native addons (binding.gyp) ship their compiled .node only: not their C sources, the sqlite
// amalgamation (deps/) or the object files of the build.
function nativeSkip(pkgDir: string): (r: string, isDir: boolean) => boolean {
  const native = existsSync(join(pkgDir, 'binding.gyp'));
  return (r, isDir) => {
    const parts = r.split(sep);
    if (parts[0] === 'node_modules') return true; // nested packages are listed by npm ls themselves
    if (!native) return false;
    if (parts[0] === 'deps' || parts[0] === 'src') return true;
    if (parts[0] === 'build') {
      if (isDir) return !(parts.length === 1 || (parts.length === 2 && parts[1] === 'Release'));
      return !(parts.length === 3 && parts[1] === 'Release' && parts[2]?.endsWith('.node') === true && parts[2] !== 'test_extension.node');
    }
    return false;
  };
}

/** The installed production dependencies, as npm sees them (no dev dependencies). */
function productionPackages(): string[] {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`stage: npm ls --omit=dev failed (exit ${r.status}): ${r.stderr.trim()}`);
  const rootReal = r.stdout.split('\n')[0]?.trim() ?? '';
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== rootReal)
    .map((l) => {
      const rel = relative(rootReal, l);
      if (!rel.startsWith(`node_modules${sep}`)) throw new Error(`stage: npm ls listed ${l}, outside ${rootReal}/node_modules`);
      return rel;
    })
    .sort();
}

function launcher(prog: string, libDir: string): string {
  return `#!/bin/sh
# builder-${prog}: runs ${libDir}/dist/bundle/bin/builder-${prog}.cjs with a Node.js that is new enough.
# builder needs Node.js 20 or newer: the one named by $BUILDER_NODE, else \`node\` on PATH
# (/usr/local/bin is searched too, where official builds and pkg install it).
PATH="$PATH:/usr/local/bin"
node="\${BUILDER_NODE:-node}"
if ! command -v "$node" >/dev/null 2>&1; then
	echo "builder-${prog}: needs Node.js 20 or newer, but \\"$node\\" was not found (install one, or set BUILDER_NODE=/path/to/node)" >&2
	exit 127
fi
exec "$node" ${prog === 'server' ? `${SERVER_NODE_FLAGS.join(' ')} ` : ''}${libDir}/launch.cjs ${prog} "$@"
`;
}

// CommonJS and old syntax on purpose: it must run on an old node to say that it is too old.
const launchCjs = `'use strict';
// Started by PREFIX/bin/builder-PROGRAM as: node launch.cjs PROGRAM ARGS...
// Refuses a Node.js older than 20 with one line, then loads the program's bundle
// (dist/bundle/bin/builder-PROGRAM.cjs, made by scripts/bundle.ts: one file, so it starts
// faster than dist/src/PROGRAM/main.js, which is shipped too) as if it had been started
// directly (its argv[1], its arguments from argv[2]).
var path = require('path');
var prog = process.argv[2];
var major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  process.stderr.write('builder-' + prog + ': needs Node.js 20 or newer; ' + process.execPath + ' is ' + process.version +
    ' (install a newer one, or set BUILDER_NODE=/path/to/node)\\n');
  process.exit(1);
}
var main = path.join(__dirname, 'dist', 'bundle', 'bin', 'builder-' + prog + '.cjs');
process.argv.splice(1, 2, main);
require(main);
`;

function manPage(prog: string, version: string, help: string): Buffer {
  const esc = (l: string): string => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1');
  const body = help.trimEnd().split('\n').map(esc).join('\n');
  const title = `BUILDER-${prog.toUpperCase()}`;
  const text = `.\\" Made from \`builder-${prog} --help\` by scripts/stage.ts.
.TH ${title} 1 "" "builder ${version}" "builder"
.SH NAME
builder-${prog} \\- ${summary[prog] ?? prog}
.SH SYNOPSIS AND OPTIONS
.nf
${body}
.fi
.SH SEE ALSO
${programs.filter((p) => p !== prog).map((p) => `.BR builder-${p} (1)`).join(',\n')}
`;
  // gzip without a name or time in the header (node writes mtime 0): the same bytes each time.
  return gzipSync(Buffer.from(text, 'utf8'), { level: 9 });
}

const summary: Record<string, string> = {
  server: 'the schedule, the queues and the result store of builder',
  worker: 'takes jobs of one platform from builder-server and runs each in a fresh sandbox',
  client: 'schedules, changes and watches jobs on a builder-server',
  inspect: 'reads a stored build result and shows or extracts its parts',
};

function helpOf(prog: string): string {
  const main = repo(BUNDLE_DIR, `builder-${prog}.cjs`);
  // A scrubbed environment: help text must not depend on who stages the tree.
  return execFileSync(process.execPath, [main, '--help'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' },
    timeout: 30_000,
  });
}

const defaultsServer = `# /etc/default/builder: the environment of builder.service (systemd EnvironmentFile=).
# A conffile: your changes are kept on upgrades. Restart after a change:
#   systemctl restart builder.service
#
# Extra flags for builder-server (--ip IP --port PORT --config-dir DIR --token-file FILE
# --upload URL --lease SECONDS ...; see \`man builder-server\`), e.g.
#   BUILDER_FLAGS="--ip 0.0.0.0 --port 1234"
BUILDER_FLAGS=""
#
# The node that runs builder (Node.js 20 or newer); default: \`node\` on PATH.
#BUILDER_NODE=/usr/local/bin/node
`;

const defaultsWorker = `# /etc/default/builder-worker: the environment of every builder-worker@PLATFORM.service
# (and builder-worker-btrfs@, builder-worker-process@).
# A conffile: your changes are kept on upgrades. /etc/default/builder-worker-PLATFORM, when it
# exists, is read after this file, so a variable set there wins for that platform.
#
# Extra flags for builder-worker (--capacity N --remote HOST:PORT --token-file FILE ...; see
# \`man builder-worker\`); they come after the unit's defaults, and the last occurrence wins:
#   BUILDER_WORKER_FLAGS="--capacity 2"
BUILDER_WORKER_FLAGS=""
#
# The node that runs builder (Node.js 20 or newer); default: \`node\` on PATH.
#BUILDER_NODE=/usr/local/bin/node
`;

export function stage(opts: StageOptions): void {
  const { destdir, prefix, system } = opts;
  if (!prefix.startsWith('/')) throw new Error(`stage: --prefix must be absolute, got "${prefix}"`);
  for (const p of programs) {
    if (!existsSync(repo('dist', 'src', p, 'main.js'))) throw new Error(`stage: dist/src/${p}/main.js is missing: run npm run build first`);
    const bundle = join(BUNDLE_DIR, `builder-${p}.cjs`);
    if (!existsSync(repo(bundle))) throw new Error(`stage: ${bundle} is missing: run npm run build first`);
  }
  rmSync(destdir, { recursive: true, force: true });
  mkdirSync(destdir, { recursive: true });
  const t = new Tree(destdir);
  const pre = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  const libDir = `${prefix.replace(/\/+$/, '')}/lib/builder`;
  const lib = join(pre, 'lib', 'builder');
  const version = packageVersion();

  // The code: the compiled src only (no tests, no bench, no source maps, no TypeScript).
  t.copyDir(repo('dist', 'src'), join(lib, 'dist', 'src'), (r, isDir) => !isDir && !r.endsWith('.js'));
  for (const p of programs) t.copy(repo(BUNDLE_DIR, `builder-${p}.cjs`), join(lib, BUNDLE_DIR, `builder-${p}.cjs`));
  const pkg = JSON.parse(readFileSync(repo('package.json'), 'utf8')) as Record<string, unknown>;
  const runtime = { name: pkg.name, version, description: pkg.description, license: pkg.license, private: true, type: 'module', engines: pkg.engines, dependencies: pkg.dependencies };
  t.write(join(lib, 'package.json'), `${JSON.stringify(runtime, null, 2)}\n`);
  t.write(join(lib, 'launch.cjs'), launchCjs);
  for (const rel of productionPackages()) {
    const from = join(repoRoot, rel);
    t.copyDir(from, join(lib, rel), nativeSkip(from));
  }
  // dist/src/templates/render.js looks for the shipped templates three levels up.
  if (existsSync(repo('templates'))) t.copyDir(repo('templates'), join(lib, 'templates'));

  for (const p of programs) {
    t.write(join(pre, 'bin', `builder-${p}`), launcher(p, libDir), 0o755);
    t.write(join(pre, 'share', 'man', 'man1', `builder-${p}.1.gz`), manPage(p, version, helpOf(p)));
  }
  const doc = join(pre, 'share', 'doc', 'builder');
  t.copy(repo('README.md'), join(doc, 'README.md'));
  if (existsSync(repo('examples'))) t.copyDir(repo('examples'), join(doc, 'examples'));

  const binPath = (text: string, from: string): string => text.split(`${from}/builder-`).join(`${prefix.replace(/\/+$/, '')}/bin/builder-`);
  if (system === 'linux') {
    const units = join(pre, 'lib', 'systemd', 'system');
    for (const u of systemdUnits) {
      t.write(join(units, u), binPath(readFileSync(repo('packaging', 'systemd', u), 'utf8'), '/usr/bin'));
    }
    t.copy(repo('packaging', 'systemd', 'builder.sysusers.conf'), join(pre, 'lib', 'sysusers.d', 'builder.conf'));
    t.copy(repo('packaging', 'systemd', 'builder.tmpfiles.conf'), join(pre, 'lib', 'tmpfiles.d', 'builder.conf'));
    t.write(join('etc', 'default', 'builder'), defaultsServer);
    t.write(join('etc', 'default', 'builder-worker'), defaultsWorker);
  } else {
    for (const s of ['builder', 'builder_worker']) {
      t.write(join(pre, 'etc', 'rc.d', s), binPath(readFileSync(repo('packaging', 'freebsd', 'rc.d', s), 'utf8'), '/usr/local/bin'), 0o755);
    }
    t.copy(repo('packaging', 'freebsd', 'newsyslog.conf'), join(pre, 'etc', 'newsyslog.conf.d', 'builder.conf'));
    t.copy(repo('packaging', 'freebsd', 'builder.conf.sample'), join(pre, 'share', 'examples', 'builder', 'builder.conf.sample'));
  }

  // Last: directories get their mode and every entry the one mtime, deepest first so that
  // setting a file's time does not disturb its directory's afterwards.
  const all = walk(destdir);
  for (const r of all) if (lstatSync(join(destdir, r)).isDirectory()) chmodSync(join(destdir, r), 0o755);
  chmodSync(destdir, 0o755);
  for (const r of [...all].reverse()) utimesSync(join(destdir, r), opts.epoch, opts.epoch);
  utimesSync(destdir, opts.epoch, opts.epoch);
}

export function parseStageArgs(argv: string[]): StageOptions {
  let destdir: string | undefined;
  let prefix: string | undefined;
  let system: System = process.platform === 'freebsd' ? 'freebsd' : 'linux';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`stage: ${a} needs a value`);
      return v;
    };
    if (a === '--prefix') prefix = value();
    else if (a === '--system') {
      const s = value();
      if (s !== 'linux' && s !== 'freebsd') throw new Error(`stage: --system is linux or freebsd, got "${s}"`);
      system = s;
    } else if (a.startsWith('-')) throw new Error(`stage: unknown option ${a}`);
    else if (destdir === undefined) destdir = a;
    else throw new Error(`stage: one DESTDIR only, got "${destdir}" and "${a}"`);
  }
  if (destdir === undefined) throw new Error('usage: npm run stage -- DESTDIR [--prefix PREFIX] [--system linux|freebsd]');
  // npm runs scripts in the package root: a relative DESTDIR is meant from where npm was called.
  return { destdir: resolve(process.env.INIT_CWD ?? process.cwd(), destdir), prefix: prefix ?? (system === 'freebsd' ? '/usr/local' : '/usr'), system, epoch: sourceDateEpoch() };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseStageArgs(process.argv.slice(2));
    stage(opts);
    console.log(`staged ${opts.system} tree, prefix ${opts.prefix}, into ${opts.destdir}`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
