// The Linux isolation piece of btrfs-ns: runs a script chrooted into a root directory, in new
// mount, PID, IPC and UTS namespaces (and optionally a new, empty network namespace), as an
// unprivileged user, with a clean environment. The root's life cycle is not done here
// (see btrfs-snapshot.ts).
//
// Process tree: unshare --fork (host) -> PID 1 of the new namespace: the host's /bin/sh, which
// sets the hostname and runs chroot as a child -> the job's /bin/sh. PID 1 is kept out of the
// job on purpose: the kernel ignores default-action signals sent to a namespace's PID 1 from
// inside, so a script that does `kill $$` would survive if it were PID 1. When PID 1 exits,
// or unshare is killed (--kill-child), the kernel kills every process left in the namespace,
// including daemons that left our process group.
import { chmod, lstat, mkdir, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UMASK } from '../build-env.js';
import { runTool } from './run-tool.js';
import { spawnGroup } from './spawn-group.js';
import type { ExitStatus, RunHandle } from './types.js';

export interface NamespaceRun {
  /** the directory that becomes / (must contain /bin/sh, /proc, /dev and /work) */
  root: string;
  /** path of the script inside the root */
  script: string;
  /** UID:GID the script runs as */
  user: string;
  /** exactly the script's environment (build-env.ts); nothing of the worker's is added */
  env: Readonly<Record<string, string>>;
  /** false: a new network namespace with only a loopback device that is down */
  hostNetwork: boolean;
  hostname?: string;
  /** a directory to bind read-only on the root's /dev (when the root has no devices itself) */
  devTemplate?: string;
}

const DEVICES: [string, number, number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

/** true when root/dev/null is a character device: the root brings its own /dev */
export async function hasOwnDev(root: string): Promise<boolean> {
  return lstat(join(root, 'dev', 'null')).then((st) => st.isCharacterDevice(), () => false);
}

/**
 * Makes (once; idempotent) a directory with only null, zero, full, random, urandom, tty and
 * the fd links: a job's /dev. Made once per worker because mknod is a process per device,
 * which would be most of a short job's overhead if done per job.
 */
export async function ensureDevTemplate(dir: string): Promise<string> {
  // the job's user must enter it: one made under a worker's umask 077 (as a systemd unit's
  // UMask= would give) is made again
  const usable = await lstat(dir).then((st) => (st.mode & 0o755) === 0o755, () => false)
    && await lstat(join(dir, 'null')).then((st) => st.isCharacterDevice(), () => false);
  if (usable) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  // mkdir's mode is cut by the umask; this one is not
  await chmod(tmp, 0o755);
  for (const [name, major, minor] of DEVICES) {
    await runTool('mknod', ['-m', '666', join(tmp, name), 'c', String(major), String(minor)]);
  }
  await symlink('/proc/self/fd', join(tmp, 'fd'));
  for (const [i, name] of ['stdin', 'stdout', 'stderr'].entries()) await symlink(`fd/${i}`, join(tmp, name));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

/** the arguments after `unshare`: exported so the benchmark can time the bare equivalent */
export function unshareArgs(run: NamespaceRun): string[] {
  // /dev: the root's own when it has one (checked by the caller), else a read-only bind of a
  // directory holding only the harmless devices (see ensureDevTemplate). The hostname is set
  // through /proc rather than hostname(1): one process less per job.
  const dev = run.devTemplate ? 'mount -o bind,ro "$5" "$3/dev" || exit 125; ' : '';
  const pid1 =
    'echo "$1" > /proc/sys/kernel/hostname || exit 125; ' +
    dev +
    // PID 1's own stderr goes quiet from here: a shell reports "Killed" for a child ended by a
    // signal, which is not the job's output; the job gets the real stderr back (fd 3) in a
    // subshell, because dash prints that message with the command's own redirections applied
    'exec 3>&2 2>/dev/null; ' +
    // the cd's OLDPWD is the wrapper's, not the job's; the umask comes before the script's first line
    '(exec 2>&3 3>&-; exec chroot --userspec="$2" "$3" /bin/sh -c ' +
    `'umask ${UMASK} && cd /work && unset OLDPWD && exec /bin/sh "$0"' "$4"); s=$?; exit $s`;
  return [
    '--mount',
    '--pid',
    '--ipc',
    '--uts',
    ...(run.hostNetwork ? [] : ['--net']),
    '--fork',
    '--kill-child',
    '--propagation=private',
    `--mount-proc=${run.root}/proc`,
    '--',
    '/bin/sh',
    '-c',
    pid1,
    'builder-ns',
    run.hostname ?? 'builder',
    run.user,
    run.root,
    run.script,
    run.devTemplate ?? '',
  ];
}

/**
 * A shell reports a child killed by signal N as 128+N, and that is all PID 1 can pass on;
 * Docker does the same. We read it back as the signal, as every backend does.
 */
export function statusFromShell(status: ExitStatus): ExitStatus {
  if (status.kind === 'exited' && status.code > 128 && status.code < 160) return { kind: 'signalled', signal: status.code - 128 };
  return status;
}

export async function runInNamespaces(run: NamespaceRun, onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
  // only the job's environment: unshare, PID 1's shell and chroot pass it on unchanged
  const env = { ...run.env };
  // unshare's --kill-child ends the namespace with it; the group kill gets stragglers
  const handle = await spawnGroup({ file: 'unshare', args: unshareArgs(run), cwd: '/', env }, onOutput);
  return {
    ...handle,
    done: handle.done.then(({ status, stats }) => ({ status: statusFromShell(status), stats })),
  };
}
