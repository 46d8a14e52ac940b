#!/usr/bin/env node
// builder-inspect: reads one build result, stored by builder-server (results/<job>/<uuid>/) or
// in builder-web's form (a `full` file, an upload body), and shows or extracts its parts.
// Exit status: 0 done, 1 a bad file (or an artifact refused by --output, or provenance that does
// not verify), 2 usage errors.
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from '../common/args.js';
import { BuilderError, UsageError } from '../common/errors.js';
import { runMain } from '../common/run-main.js';
import { versionLine } from '../common/version.js';
import { writeArtifacts } from './output.js';
import { provenanceText, verifyProvenance } from './provenance.js';
import { findResult, openSource, type Source } from './source.js';

const USAGE = `usage: builder-inspect PATH [options]
       builder-inspect --dir STATEDIR UUID [options]

PATH is a stored result directory (STATEDIR/results/JOB/UUID) or a builder-web exec record
(a "full" file, or an upload body). Without options, --job.

options:
  --job            name, platform, uuid, times, result and artifacts as text
  --json           with --job (or alone): the run.json-like record as JSON
  --script         the job's script, byte for byte
  --console        the console, oldest line first, each with its time since the start
  --output DIR     write the artifacts into DIR (created if needed); paths that are absolute,
                   contain "..", or lead through a symlink already in DIR are refused
  --export FILE    write the builder-web upload body of the result to FILE, for
                   curl --data-binary @FILE https://user:pass@host/upload
                   (curl 7 loads @FILE into memory and refuses 1 GiB and more: then use
                   curl -X POST -T FILE -H 'Expect:' https://user:pass@host/upload)
  --provenance     the signed provenance statement (in-toto Statement v1, SLSA Provenance v1)
                   from provenance.json, as JSON; shown as stored, not verified
  --verify-provenance KEYFILE
                   check provenance.json's signature with the public key in KEYFILE (what
                   builder-server --print-public-key prints) and that every artifact on disk
                   matches the statement; one line per problem, exit 1 if there is any
  --dir STATEDIR   find the result UUID in the server's state directory
  --version        the version of builder
  -h, --help       this text`;

const pad2 = (s: string): string => s.padEnd(11);

function jobText(s: Source): string {
  const took = s.finished.getTime() - s.started.getTime();
  const total = s.artifacts.reduce((n, a) => n + a.size, 0);
  return [
    `${pad2('job:')}${s.job.toString('utf8')}`,
    `${pad2('platform:')}${s.platform.toString('utf8')}`,
    `${pad2('uuid:')}${s.uuid}`,
    `${pad2('started:')}${s.started.toISOString()}`,
    `${pad2('finished:')}${s.finished.toISOString()} (took ${(took / 1000).toFixed(3)}s)`,
    `${pad2('result:')}${s.result}`,
    `${pad2('artifacts:')}${s.artifacts.length} (${total} bytes)`,
    ...s.artifacts.map((a) => `  ${a.path.toString('utf8')} (${a.size} bytes)`),
  ].join('\n') + '\n';
}

const linePrefix = (ms: number): Buffer => Buffer.from(`+${(ms / 1000).toFixed(3)}s `.padStart(12));

async function write(data: Buffer | string): Promise<void> {
  if (!process.stdout.write(data)) await new Promise((r) => process.stdout.once('drain', r));
}

async function exportTo(s: Source, file: string): Promise<number> {
  const body = await s.exportBody();
  try {
    await pipeline(Readable.from(body.body), createWriteStream(file));
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return body.length;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    values: ['output', 'export', 'dir', 'verify-provenance'],
    booleans: ['console', 'script', 'job', 'json', 'provenance', 'help', 'version'],
  });
  if (args.booleans.has('help')) {
    console.log(USAGE);
    return 0;
  }
  if (args.booleans.has('version')) {
    console.log(versionLine('builder-inspect'));
    return 0;
  }
  if (args.positionals.length !== 1) {
    throw new UsageError(`expected ${args.values.dir === undefined ? 'one PATH' : 'one UUID'}, got ${args.positionals.length} arguments`);
  }
  const arg = args.positionals[0]!;
  let path = arg;
  if (args.values.dir !== undefined) {
    try {
      path = await findResult(args.values.dir, arg);
    } catch (err) {
      if (err instanceof BuilderError && err.code === 'USAGE_UUID') throw new UsageError(err.message);
      throw err;
    }
  }
  const source = await openSource(path);
  const b = args.booleans;
  const verifyKey = args.values['verify-provenance'];
  const acting = ['console', 'script', 'job', 'json', 'provenance'].some((f) => b.has(f)) || args.values.output !== undefined ||
    args.values.export !== undefined || verifyKey !== undefined;

  if (b.has('json')) await write(JSON.stringify(source.json(), null, 2) + '\n');
  else if (b.has('job') || !acting) await write(jobText(source));
  if (b.has('script')) await write(await source.script());
  if (b.has('console')) {
    for (const [ms, line] of await source.console()) await write(Buffer.concat([linePrefix(ms), line, Buffer.from('\n')]));
  }
  if (b.has('provenance')) await write(await provenanceText(source));
  let status = 0;
  if (verifyKey !== undefined) {
    const check = await verifyProvenance(source, verifyKey);
    for (const problem of check.problems) await write(`${problem}\n`);
    if (check.problems.length > 0) {
      process.stderr.write(`builder-inspect: provenance does not verify (${check.problems.length} problem${check.problems.length === 1 ? '' : 's'})\n`);
      status = 1;
    } else {
      await write(`${check.summary}\n`);
    }
  }
  if (args.values.output !== undefined) {
    const report = await writeArtifacts(args.values.output, source.artifacts);
    for (const r of report.refused) process.stderr.write(`builder-inspect: refused artifact ${JSON.stringify(r.path)}: ${r.reason}\n`);
    process.stderr.write(`wrote ${report.written.length} artifact${report.written.length === 1 ? '' : 's'} into ${args.values.output}\n`);
    if (report.refused.length > 0) status = 1;
  }
  if (args.values.export !== undefined) {
    const n = await exportTo(source, args.values.export);
    process.stderr.write(`wrote the builder-web record of ${source.uuid} (${n} bytes) to ${args.values.export}\n`);
  }
  return status;
}

// a bad file or a refused write: one line, no stack (a bug keeps its stack)
runMain('builder-inspect', () => main(process.argv.slice(2)));
