// The flags schedule and orb-build share for a job's environment: --source-date-epoch and
// --secret NAME=@FILE (repeatable). A secret's value is read here and sent once; the server
// checks its name and length (job-secrets.ts), so both commands refuse alike.
// read synchronously, as schedule.ts reads the script (see there)
import { readFileSync } from 'node:fs';
import { UsageError } from '../../common/errors.js';
import type { ParsedArgs } from '../../common/args.js';
import type { SecretArg } from '../../protocol/messages.js';

export const buildEnvFlags = { values: ['source-date-epoch'], lists: ['secret'] } as const;

/** the largest SOURCE_DATE_EPOCH the server takes: 9999-12-31T23:59:59Z */
const MAX_EPOCH = 253_402_300_799;

export const buildEnvHelp = `  --source-date-epoch SECONDS          SOURCE_DATE_EPOCH of every run (default: the job's creation time)
  --secret NAME=@FILE                  give the job FILE's content as $NAME, masked as *** in its output;
                                       repeatable; one trailing newline of FILE is dropped`;

export function buildEnvArgs(args: ParsedArgs): { sourceDateEpoch?: number; secrets?: SecretArg[] } {
  const out: { sourceDateEpoch?: number; secrets?: SecretArg[] } = {};
  const raw = args.values['source-date-epoch'];
  if (raw !== undefined) {
    // decimal digits only: "1e9", "0x10" or " 5" are what Number() would take and a shell would not
    if (!/^\d{1,12}$/.test(raw) || Number(raw) > MAX_EPOCH) {
      throw new UsageError(`--source-date-epoch must be decimal seconds since 1970 (0 to ${MAX_EPOCH}), got "${raw}"`);
    }
    out.sourceDateEpoch = Number(raw);
  }
  const specs = args.lists?.secret ?? [];
  if (specs.length > 0) out.secrets = specs.map(readSecret);
  return out;
}

function readSecret(spec: string): SecretArg {
  const m = /^([^=]*)=@(.+)$/s.exec(spec);
  if (!m) {
    // never echo what follows "=": a user who wrote NAME=VALUE must not find VALUE in a log
    const name = spec.split('=')[0];
    throw new UsageError(`--secret must be NAME=@FILE (the value is read from FILE), got "${name}=..."`);
  }
  const [, name, file] = m as unknown as [string, string, string];
  let value: string;
  try {
    value = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--secret ${name}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  // `echo TOKEN > file` leaves a newline nobody means to be part of the value
  return { name, value: value.replace(/\r?\n$/, '') };
}
