// The FreeBSD isolation piece of zfs-jail: a persistent jail on a root directory, the script
// run in it with jexec as an unprivileged user, and the jail's removal. The root's life cycle is
// not done here (see zfs-clone.ts).
import { isOwnSandbox } from './sandbox-names.js';
import { UMASK } from '../build-env.js';
import { runTool, toolStderr } from './run-tool.js';
import { spawnGroup } from './spawn-group.js';
import type { RunHandle } from './types.js';

export interface JailSpec {
  name: string;
  root: string;
  hostname: string;
  ip: string;
  iface: string;
}

export async function startJail(j: JailSpec): Promise<void> {
  // interface=: the address is added to that interface as an alias while the jail exists;
  // persist: the jail stays until `jail -r`, between jexec calls
  await runTool('jail', [
    '-c',
    `name=${j.name}`,
    `path=${j.root}`,
    `host.hostname=${j.hostname}`,
    `interface=${j.iface}`,
    `ip4.addr=${j.ip}`,
    'mount.devfs',
    'persist',
  ]);
}

/**
 * Runs the script in the jail: -l for a clean environment (nothing of the worker's reaches the
 * job), -U for a user of the jail's own passwd, -d for the working directory. -l still adds
 * the login class's variables (and its umask), so `env -i` then starts the script with exactly
 * the job's environment. Its values are on env's command line only until env execs the shell.
 */
export function execInJail(
  name: string,
  user: string,
  script: string,
  env: Readonly<Record<string, string>>,
  onOutput: (chunk: Buffer) => void,
): Promise<RunHandle> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const run = ['/usr/bin/env', '-i', ...vars, '/bin/sh', '-c', `umask ${UMASK}; exec /bin/sh "$0"`, script];
  return spawnGroup({ file: 'jexec', args: ['-l', '-U', user, '-d', '/work', name, ...run], cwd: '/' }, onOutput);
}

/** removes the jail, which kills every process left in it; a jail that is gone is fine */
export async function removeJail(name: string): Promise<void> {
  try {
    await runTool('jail', ['-r', name]);
  } catch (err) {
    if (!/not found/i.test(toolStderr(err))) throw err;
  }
}

/** devfs was mounted by `mount.devfs`; `jail -r` by name alone does not unmount it */
export async function unmountDevfs(root: string): Promise<void> {
  await runTool('umount', ['-f', `${root}/dev`]).catch(() => undefined); // not mounted: nothing to do
}

export async function listJails(prefix: string): Promise<string[]> {
  const out = await runTool('jls', ['-N', 'name']).catch(() => '');
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((n) => isOwnSandbox(n, prefix));
}
