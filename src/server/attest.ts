// Signs what the server vouches for about each stored run: the run's provenance (an in-toto
// Statement with a SLSA Provenance v1 predicate in a DSSE envelope, src/provenance/), made from
// the run's stored record alone (run.json's fields, the script's digest, the build inputs), so
// nothing from the job's environment, and no secret given to it, can end up in it.
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { signStatement, type DsseEnvelope } from '../provenance/dsse.js';
import { loadOrCreateSigningKey, type SigningKey } from '../provenance/key.js';
import { buildStatement } from '../provenance/statement.js';
import type { RunMeta } from '../results/index.js';

/** What a rebuild must match besides the script, when the run record knows it. */
export interface BuildInputs {
  /** the job's SOURCE_DATE_EPOCH, seconds */
  sourceDateEpoch?: number | undefined;
  /** the template a templated (orb-build) job's script was rendered from */
  template?: { path: string; sha256: string; opamPackage?: string | undefined } | undefined;
}

export interface Attester {
  readonly key: SigningKey;
  /** The signed provenance of a finished run, for results/JOB/UUID/provenance.json. */
  envelope(meta: RunMeta, script: string | Buffer, inputs?: BuildInputs): DsseEnvelope;
}

/** The signing key lives next to the token: DIR/token unless --token-file says elsewhere. */
export const signingKeyDir = (stateDir: string, tokenFile: string | undefined): string =>
  tokenFile === undefined ? stateDir : dirname(tokenFile);

export const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

export function makeAttester(key: SigningKey, builderId: string): Attester {
  return {
    key,
    envelope(meta, script, inputs = {}) {
      const statement = buildStatement({
        builderId,
        job: meta.job,
        platform: meta.platform,
        uuid: meta.uuid,
        worker: meta.worker,
        scriptSha256: sha256Hex(script),
        template: inputs.template,
        sourceDateEpoch: inputs.sourceDateEpoch,
        sandbox: meta.sandbox,
        startedOn: new Date(meta.started),
        finishedOn: new Date(meta.finished),
        result: { ...meta.result },
        artifacts: meta.artifacts.map((a) => ({ path: a.path, size: a.size, sha256: a.sha256 })),
      });
      return signStatement(statement, key);
    },
  };
}

/** Loads the server's key (making it on first start) and the attester that signs with it. */
export function attesterFor(keyDir: string, builderId: string): Attester & { created: boolean } {
  const key = loadOrCreateSigningKey(keyDir);
  return Object.assign(makeAttester(key, builderId), { created: key.created });
}
