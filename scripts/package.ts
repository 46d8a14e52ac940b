// npm run package: the Debian package and the FreeBSD staging directory, from staged trees.
//
//   dist/packages/builder_VERSION_ARCH.deb       dpkg-deb --build --root-owner-group
//   dist/packages/freebsd/+MANIFEST              what `pkg create -M +MANIFEST -r root` reads
//   dist/packages/freebsd/root/                  the tree staged with --system freebsd
//
// Both are reproducible: the staged trees have fixed mtimes (SOURCE_DATE_EPOCH, else the last
// commit's time), dpkg-deb gets the same SOURCE_DATE_EPOCH, and the manifest is JSON with
// sorted keys. The FreeBSD tree carries the node_modules of the machine that stages it, whose
// native addons (better-sqlite3) are built for that system: make the real FreeBSD package on
// FreeBSD (README, "FreeBSD package").
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageVersion, repoRoot, sourceDateEpoch, stage, walk } from './stage.js';

export const packagesDir = join(repoRoot, 'dist', 'packages');
const packagingDir = join(repoRoot, 'packaging');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env });
  if (r.error) throw new Error(`package: ${cmd} could not be started: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`package: ${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The Debian architecture of the native addons that are staged: the build machine's. */
function debArch(): string {
  return run('dpkg', ['--print-architecture']).trim();
}

function installedSizeKiB(root: string): number {
  let bytes = 0;
  for (const r of walk(root, (d) => d === 'DEBIAN')) {
    const st = lstatSync(join(root, r));
    bytes += st.isFile() ? st.size : 0;
  }
  return Math.ceil(bytes / 1024);
}

/** Stages into DIR/deb-root and builds DIR/builder_VERSION_ARCH.deb; returns its path. */
export function buildDeb(epoch: number, dir: string = packagesDir): string {
  const version = packageVersion();
  const arch = debArch();
  const root = join(dir, 'deb-root');
  stage({ destdir: root, prefix: '/usr', system: 'linux', epoch });
  const debian = join(root, 'DEBIAN');
  mkdirSync(debian);
  const control = `Package: builder
Version: ${version}
Architecture: ${arch}
Maintainer: builder developers <builder@example.org>
Installed-Size: ${installedSizeKiB(root)}
Depends: passwd
Recommends: nodejs (>= 20)
Suggests: docker.io, btrfs-progs
Section: devel
Priority: optional
Homepage: https://github.com/robur-coop/builder
Description: reproducible-build orchestrator: server, workers, client, inspector
 builder-server keeps a persistent schedule of build jobs and a queue per
 platform, hands jobs to builder-worker processes that run each in a fresh
 sandbox (Docker, btrfs snapshots in namespaces, or a plain directory), and
 stores every result; builder-client schedules and observes jobs.
 .
 Needs Node.js 20 or newer, which Debian 12 does not ship (its nodejs is 18):
 install nodejs 20+ from NodeSource or an official build in /usr/local/bin, or
 set BUILDER_NODE in /etc/default/builder. The programs refuse an older node
 with a one-line message.
`;
  writeFileSync(join(debian, 'control'), control);
  writeFileSync(join(debian, 'conffiles'), '/etc/default/builder\n/etc/default/builder-worker\n');
  for (const s of ['postinst', 'prerm', 'postrm']) {
    writeFileSync(join(debian, s), readFileSync(join(packagingDir, 'debian', s)));
    chmodSync(join(debian, s), 0o755);
  }
  chmodSync(debian, 0o755);
  for (const f of ['control', 'conffiles']) chmodSync(join(debian, f), 0o644);
  const out = join(dir, `builder_${version}_${arch}.deb`);
  rmSync(out, { force: true });
  run('dpkg-deb', ['--build', '--root-owner-group', '-Zxz', root, out], { ...process.env, SOURCE_DATE_EPOCH: String(epoch) });
  return out;
}

export interface FreebsdManifest {
  name: string;
  version: string;
  origin: string;
  comment: string;
  desc: string;
  maintainer: string;
  www: string;
  prefix: string;
  licenselogic: string;
  licenses: string[];
  users: string[];
  groups: string[];
  flatsize: number;
  files: Record<string, { sum: string; uname: string; gname: string; perm: string }>;
  directories: Record<string, { uname: string; gname: string; perm: string }>;
  scripts: Record<string, string>;
  messages: { message: string; type?: string }[];
}

export function freebsdManifest(root: string): FreebsdManifest {
  const files: FreebsdManifest['files'] = {};
  const directories: FreebsdManifest['directories'] = {};
  let flatsize = 0;
  for (const r of walk(root)) {
    const p = join(root, r);
    const st = statSync(p);
    const abs = `/${r}`;
    if (st.isDirectory()) {
      // Only builder's own directories are removed with the package; /usr/local/bin is shared.
      if (abs.startsWith('/usr/local/lib/builder') || abs.startsWith('/usr/local/share/doc/builder') || abs.startsWith('/usr/local/share/examples/builder')) {
        directories[abs] = { uname: 'root', gname: 'wheel', perm: '0755' };
      }
      continue;
    }
    flatsize += st.size;
    files[abs] = {
      sum: createHash('sha256').update(readFileSync(p)).digest('hex'),
      uname: 'root',
      gname: 'wheel',
      perm: (st.mode & 0o111) !== 0 ? '0755' : '0644',
    };
  }
  directories['/var/db/builder'] = { uname: 'builder', gname: 'builder', perm: '0700' };
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { description: string; license: string };
  return {
    name: 'builder',
    version: packageVersion(),
    origin: 'devel/builder',
    comment: 'Reproducible-build orchestrator: server, workers, client, inspector',
    desc: `${pkg.description}.\n\nNeeds Node.js 20 or newer (pkg install node22, or www/node20 and newer).`,
    maintainer: 'builder@example.org',
    www: 'https://github.com/robur-coop/builder',
    prefix: '/usr/local',
    licenselogic: 'single',
    licenses: [pkg.license],
    users: ['builder'],
    groups: ['builder'],
    flatsize,
    files,
    directories,
    scripts: {
      'pre-install': readFileSync(join(packagingDir, 'freebsd', 'pkg-pre-install.sh'), 'utf8'),
      'post-deinstall': readFileSync(join(packagingDir, 'freebsd', 'pkg-post-deinstall.sh'), 'utf8'),
    },
    messages: [
      {
        message:
          'builder needs Node.js 20 or newer: pkg install node22 (or another www/node>=20).\n' +
          'Enable the services with sysrc builder_enable=YES builder_worker_enable=YES and see\n' +
          '/usr/local/share/examples/builder/builder.conf.sample for the rc.conf variables.',
        type: 'install',
      },
    ],
  };
}

/** JSON with keys sorted at every level, so the bytes do not depend on insertion order. */
function stableJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x !== null && typeof x === 'object') {
      return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]));
    }
    return x;
  };
  return `${JSON.stringify(sort(v), null, 2)}\n`;
}

/** Stages into DIR/root and writes DIR/+MANIFEST; returns the manifest's path. */
export function buildFreebsd(epoch: number, dir: string = join(packagesDir, 'freebsd')): string {
  rmSync(dir, { recursive: true, force: true });
  const root = join(dir, 'root');
  stage({ destdir: root, prefix: '/usr/local', system: 'freebsd', epoch });
  const manifest = join(dir, '+MANIFEST');
  writeFileSync(manifest, stableJson(freebsdManifest(root)));
  return manifest;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    mkdirSync(packagesDir, { recursive: true });
    const epoch = sourceDateEpoch();
    const only = process.argv[2];
    if (only !== undefined && only !== 'deb' && only !== 'freebsd') throw new Error(`usage: npm run package [-- deb|freebsd], got "${only}"`);
    if (only !== 'freebsd') console.log(`built ${buildDeb(epoch)}`);
    if (only !== 'deb') console.log(`built ${buildFreebsd(epoch)} (stage: ${join(packagesDir, 'freebsd', 'root')})`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
