// builder-inspect --provenance / --verify-provenance KEYFILE: a stored result's signed provenance
// (results/JOB/UUID/provenance.json, a DSSE envelope). Showing it decodes the payload without
// trusting it; verifying checks the signature with the key the user names (never one found next
// to the result), then that every artifact on disk is the one the signed statement lists.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuilderError, errorMessage } from '../common/errors.js';
import { parseEnvelope, verifyArtifacts, verifyEnvelope } from '../provenance/dsse.js';
import { PROVENANCE_FILE } from '../results/index.js';
import type { Source } from './source.js';

async function readEnvelope(source: Source): Promise<{ file: string; envelope: unknown }> {
  if (source.kind !== 'stored') {
    throw new BuilderError('BAD_INPUT', `${source.where}: a builder-web record carries no provenance; give the stored result directory`);
  }
  const file = join(source.where, PROVENANCE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BuilderError('PROVENANCE', `${file}: ${missing ? 'not found (stored by a server running with --no-provenance, or before provenance existed)' : errorMessage(err)}`, { cause: err });
  }
  return { file, envelope: parseEnvelope(text, file) };
}

/** The statement inside the envelope, pretty JSON; not verified (--verify-provenance does that). */
export async function provenanceText(source: Source): Promise<string> {
  const { file, envelope } = await readEnvelope(source);
  const payload = (envelope as { payload?: unknown } | null)?.payload;
  if (typeof payload !== 'string') throw new BuilderError('PROVENANCE', `${file}: no payload in the envelope`);
  let statement: unknown;
  try {
    statement = JSON.parse(Buffer.from(payload, 'base64').toString('utf8'));
  } catch (err) {
    throw new BuilderError('PROVENANCE', `${file}: the payload is not base64 of JSON: ${errorMessage(err)}`, { cause: err });
  }
  return JSON.stringify(statement, null, 2) + '\n';
}

export interface ProvenanceCheck {
  /** one line per problem; empty when the provenance holds */
  problems: string[];
  /** what was checked, for the success line */
  summary: string;
}

/** Signature by the key in `keyFile`, then the artifacts on disk against the signed subjects. */
export async function verifyProvenance(source: Source, keyFile: string): Promise<ProvenanceCheck> {
  let pem: string;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch (err) {
    throw new BuilderError('KEY', `cannot read public key ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
  const { file, envelope } = await readEnvelope(source);
  const verified = verifyEnvelope(envelope, pem);
  if (!verified.ok) return { problems: [`${file}: ${verified.reason}`], summary: '' };
  const statement = verified.statement;
  const problems: string[] = [];
  if (statement.predicate?.runDetails?.metadata?.invocationId !== source.uuid) {
    problems.push(`${file}: signed for run ${JSON.stringify(statement.predicate?.runDetails?.metadata?.invocationId)}, this result is ${source.uuid}`);
  }
  const artifactsDir = join(source.where, 'artifacts');
  problems.push(...(await verifyArtifacts(statement, artifactsDir)).problems);
  const listed = new Set(statement.subject.map((s) => s.name));
  for (const path of await filesUnder(artifactsDir)) {
    if (!listed.has(path)) problems.push(`${path}: on disk but not in the signed statement`);
  }
  const n = statement.subject.length;
  return { problems, summary: `provenance of ${source.uuid} verified: signed by key ${verified.keyid.slice(0, 16)}…, ${n} artifact${n === 1 ? '' : 's'} match` };
}

/** Every file (and link) under dir, as '/'-separated paths relative to it; none when dir is absent. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(join(dir, prefix), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesUnder(dir, rel)));
    else out.push(rel);
  }
  return out;
}
