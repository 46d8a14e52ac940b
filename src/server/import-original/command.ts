// `builder-server import-original OLD_STATEDIR --dir NEW_STATEDIR`: moving over from the original.
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from '../../common/args.js';
import { BuilderError, UsageError } from '../../common/errors.js';
import { defaultStateDir } from '../../common/paths.js';
import { STATE_DB } from '../backup.js';
import { openStore } from '../store/index.js';
import { importOriginal } from './import.js';

const USAGE = `usage: builder-server import-original OLD_STATEDIR [--dir STATEDIR] [--merge]

Imports the state of the original (OCaml) builder: from OLD_STATEDIR/state its schedule (periods
and next runs), queues and dropped platforms; from OLD_STATEDIR/JOB/UUID/full the results it kept,
as finished runs with console, script and artifacts. Prints one line per thing imported, and one
per thing that could not be, with the reason; the rest is still imported.

Imported jobs get the original's fixed timeout of one hour; orb-build jobs need
orb-build.template.PLATFORM in the config directory as before. Imported results are not queued
for upload (builder-client upload-retry UUID sends one).

The server must be stopped: STATEDIR's database is held exclusively while importing, and the
import refuses to start while a server has it open.

options:
  --dir STATEDIR   the new state directory (default ${defaultStateDir()})
  --merge          import into a state directory that has jobs or runs already; jobs and runs
                   whose names or uuids exist are reported and left as they are
  --help           this text

exit status: 0 everything imported, 1 something could not be (see the lines starting with
"not imported"), 2 usage error`;

export async function importOriginalCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['dir'], booleans: ['help', 'merge'] });
  if (args.booleans.has('help')) {
    console.log(USAGE);
    return 0;
  }
  const hint = { hint: 'try builder-server import-original --help' };
  const [old, extra] = args.positionals;
  if (old === undefined) throw new UsageError('import-original needs OLD_STATEDIR, the original\'s state directory', hint);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`, hint);
  const oldDir = resolve(old);
  const stateDir = resolve(args.values.dir ?? defaultStateDir());
  if (oldDir === stateDir) throw new UsageError('OLD_STATEDIR and --dir are the same directory', hint);
  const st = await stat(oldDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new BuilderError('NOT_FOUND', `${oldDir}: not a directory`);

  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const store = openStore(join(stateDir, STATE_DB), { exclusive: true });
  try {
    if (!args.booleans.has('merge') && (store.jobCount() > 0 || store.history(undefined, 1).length > 0)) {
      throw new BuilderError('STORE', `${stateDir} has jobs or runs already; import into an empty state directory, or give --merge`);
    }
    const lines = await importOriginal(store, oldDir, stateDir);
    for (const l of lines) {
      console.log(l.status === 'imported' ? `imported ${l.text}` : l.status === 'ignored' ? `ignored ${l.text}` : `not imported: ${l.text}`);
    }
    const failed = lines.filter((l) => l.status === 'failed').length;
    const imported = lines.filter((l) => l.status === 'imported').length;
    console.log(`${imported} imported, ${failed} not imported`);
    return failed > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}
