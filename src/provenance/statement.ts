// What the server attests for each finished run: an in-toto Statement v1 whose predicate is SLSA
// Provenance v1. Subjects are the artifacts by sha256; the build definition is everything a
// rebuild needs to match (job, script digest, template and its digest, platform,
// SOURCE_DATE_EPOCH, sandbox); run details say who ran it, when, and how it ended.
// Built only from the fields below, never from the job's environment: secrets cannot leak in.
import type { ArtifactDigest } from '../repro/compare.js';
import { artifactPathProblem } from '../common/names.js';
import { BuilderError } from '../common/errors.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** Ours: names the meaning of externalParameters / internalParameters below. Bump on change. */
export const BUILD_TYPE = 'urn:builder:build-type:sandboxed-script:v1';

export interface Subject {
  name: string;
  digest: { sha256: string };
}

export interface SandboxInfo {
  /** process | docker | btrfs-ns | zfs-jail ... */
  kind: string;
  /** docker: the image reference and its digest (sha256:...) */
  image?: string | undefined;
  imageDigest?: string | undefined;
  /** btrfs-ns / zfs-jail: the snapshot the run was cloned from */
  snapshot?: string | undefined;
}

export interface ProvenanceInput {
  /** e.g. "https://builds.example.org/builder" or "urn:builder:server:HOST": who vouches */
  builderId: string;
  builderVersion?: string | undefined;
  job: string;
  platform: string;
  uuid: string;
  worker: string;
  scriptSha256: string;
  /** set for orb-build (templated) jobs */
  template?: { path: string; sha256: string; opamPackage?: string | undefined } | undefined;
  /** absent for runs of jobs stored before SOURCE_DATE_EPOCH was per job */
  sourceDateEpoch?: number | undefined;
  /** absent when the worker never described it (a run lost or cancelled before it reported) */
  sandbox?: SandboxInfo | undefined;
  startedOn: Date;
  finishedOn: Date;
  /** the run's result as stored (e.g. { kind: 'exited', code: 0 }) */
  result: Record<string, unknown>;
  artifacts: readonly ArtifactDigest[];
}

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface ProvenanceStatement {
  _type: typeof STATEMENT_TYPE;
  subject: Subject[];
  predicateType: typeof SLSA_PROVENANCE_V1;
  predicate: {
    buildDefinition: {
      buildType: string;
      externalParameters: Record<string, unknown>;
      internalParameters: Record<string, unknown>;
      resolvedDependencies: ResourceDescriptor[];
    };
    runDetails: {
      builder: { id: string; version?: Record<string, string> };
      metadata: { invocationId: string; startedOn: string; finishedOn: string };
      byproducts: ResourceDescriptor[];
    };
  };
}

const SHA256 = /^[0-9a-f]{64}$/;

export function buildStatement(input: ProvenanceInput): ProvenanceStatement {
  for (const [what, digest] of [['script', input.scriptSha256], ['template', input.template?.sha256]] as const) {
    if (digest !== undefined && !SHA256.test(digest)) throw new BuilderError('PROVENANCE', `${what} sha256 "${digest}" is not 64 lowercase hex digits`);
  }
  const subject = [...input.artifacts]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((a): Subject => {
      const problem = artifactPathProblem(a.path);
      if (problem) throw new BuilderError('PROVENANCE', `artifact ${JSON.stringify(a.path)}: ${problem}`);
      if (!SHA256.test(a.sha256)) throw new BuilderError('PROVENANCE', `artifact ${a.path}: sha256 "${a.sha256}" is not 64 lowercase hex digits`);
      return { name: a.path, digest: { sha256: a.sha256 } };
    });
  const externalParameters: Record<string, unknown> = {
    job: input.job,
    platform: input.platform,
    script: { sha256: input.scriptSha256 },
  };
  if (input.sourceDateEpoch !== undefined) externalParameters.sourceDateEpoch = input.sourceDateEpoch;
  if (input.template) {
    externalParameters.template = { path: input.template.path, sha256: input.template.sha256 };
    if (input.template.opamPackage !== undefined) externalParameters.opamPackage = input.template.opamPackage;
  }
  const internalParameters: Record<string, unknown> = {};
  const resolvedDependencies: ResourceDescriptor[] = [];
  if (input.sandbox) {
    const sandbox: Record<string, string> = { kind: input.sandbox.kind };
    if (input.sandbox.image !== undefined) sandbox.image = input.sandbox.image;
    if (input.sandbox.imageDigest !== undefined) sandbox.imageDigest = input.sandbox.imageDigest;
    if (input.sandbox.snapshot !== undefined) sandbox.snapshot = input.sandbox.snapshot;
    internalParameters.sandbox = sandbox;
    if (input.sandbox.imageDigest?.startsWith('sha256:')) {
      resolvedDependencies.push({
        name: 'sandbox-image',
        ...(input.sandbox.image !== undefined ? { uri: `docker-image:${input.sandbox.image}` } : {}),
        digest: { sha256: input.sandbox.imageDigest.slice('sha256:'.length) },
      });
    }
  }
  internalParameters.worker = input.worker;
  return {
    _type: STATEMENT_TYPE,
    subject,
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters,
        internalParameters,
        resolvedDependencies,
      },
      runDetails: {
        builder: { id: input.builderId, ...(input.builderVersion ? { version: { builder: input.builderVersion } } : {}) },
        metadata: { invocationId: input.uuid, startedOn: input.startedOn.toISOString(), finishedOn: input.finishedOn.toISOString() },
        byproducts: [{ name: 'result', annotations: { ...input.result } }],
      },
    },
  };
}

/** Checks a parsed payload is one of our statements (after its signature was verified). */
export function asProvenanceStatement(value: unknown): ProvenanceStatement {
  const v = value as Partial<ProvenanceStatement> | null;
  if (!v || typeof v !== 'object') throw new BuilderError('PROVENANCE', 'statement is not a JSON object');
  if (v._type !== STATEMENT_TYPE) throw new BuilderError('PROVENANCE', `statement _type is ${JSON.stringify(v._type)}, expected ${STATEMENT_TYPE}`);
  if (v.predicateType !== SLSA_PROVENANCE_V1) throw new BuilderError('PROVENANCE', `predicateType is ${JSON.stringify(v.predicateType)}, expected ${SLSA_PROVENANCE_V1}`);
  if (!Array.isArray(v.subject)) throw new BuilderError('PROVENANCE', 'statement has no subject list');
  for (const s of v.subject as unknown[]) {
    const sub = s as Partial<Subject> | null;
    if (!sub || typeof sub.name !== 'string' || typeof sub.digest?.sha256 !== 'string') {
      throw new BuilderError('PROVENANCE', `malformed subject ${JSON.stringify(s)}`);
    }
  }
  return v as ProvenanceStatement;
}
