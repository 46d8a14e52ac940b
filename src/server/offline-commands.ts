// The sub-commands of builder-server that work on a state directory instead of serving it:
// backup (while the server runs), restore and import-original (with it stopped). main.ts
// hands argv to one of these when its first word names one.
type Command = (argv: string[]) => Promise<number>;

const COMMANDS = new Map<string, () => Promise<Command>>([
  ['backup', async () => (await import('./backup.js')).backupCommand],
  ['restore', async () => (await import('./backup.js')).restoreCommand],
  ['import-original', async () => (await import('./import-original/command.js')).importOriginalCommand],
  // check: the stored results against the database, read-only, also while the server runs
  ['check', async () => (await import('./check.js')).checkCommand],
]);

/** The command named by the first argument, or undefined: then argv is the server's own flags. */
export async function offlineCommand(name: string | undefined): Promise<Command | undefined> {
  const load = name === undefined ? undefined : COMMANDS.get(name);
  return load?.();
}
