// DSSE envelopes (the signing wrapper in-toto uses): the signature covers the pre-authentication
// encoding "DSSEv1 LEN(type) type LEN(body) body", so the payload type is signed too and a
// signature for one kind of document can never pass for another. Ed25519 signs those bytes
// directly (no pre-hash), which is what `openssl pkeyutl -verify -rawin` checks independently.
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { BuilderError, errorMessage } from '../common/errors.js';
import { artifactPathProblem } from '../common/names.js';
import { parsePublicKey, keyIdOf } from './key.js';
import { asProvenanceStatement, type ProvenanceStatement } from './statement.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface DsseSignature {
  keyid: string;
  /** base64 */
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  /** base64 of the serialized body */
  payload: string;
  signatures: DsseSignature[];
}

export type VerifyResult =
  | { ok: true; payloadType: string; payload: Buffer; keyid: string; statement: ProvenanceStatement }
  | { ok: false; reason: string };

/** The bytes a DSSE signature covers; lengths are byte counts in ASCII decimal. */
export function pae(payloadType: string, body: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/** Signs a payload (bytes) into an envelope; `key` is what loadOrCreateSigningKey returns. */
export function signEnvelope(body: Buffer, key: { privateKey: KeyObject; keyid: string }, payloadType = IN_TOTO_PAYLOAD_TYPE): DsseEnvelope {
  const sig = sign(null, pae(payloadType, body), key.privateKey);
  return { payloadType, payload: body.toString('base64'), signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }] };
}

/** The statement serialized once, signed; store the envelope as results/JOB/UUID/provenance.json. */
export const signStatement = (statement: ProvenanceStatement, key: { privateKey: KeyObject; keyid: string }): DsseEnvelope =>
  signEnvelope(Buffer.from(JSON.stringify(statement), 'utf8'), key);

// DSSE allows either base64 alphabet; anything else (spaces, junk Node would skip) is refused
const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;
const b64 = (s: unknown, what: string): Buffer => {
  if (typeof s !== 'string' || !BASE64.test(s) || s.replace(/=+$/, '').length % 4 === 1) throw new Error(`${what} is not base64`);
  return Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
};

/**
 * Checks that some signature in the envelope is by `publicKeyPem` over the PAE of its payload,
 * then that the payload is an in-toto provenance statement. The statement handed back is parsed
 * from exactly the bytes that were verified, never re-read from the envelope.
 */
export function verifyEnvelope(envelope: unknown, publicKeyPem: string): VerifyResult {
  let key: KeyObject;
  try {
    key = parsePublicKey(publicKeyPem);
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  const env = envelope as Partial<DsseEnvelope> | null;
  if (!env || typeof env !== 'object') return { ok: false, reason: 'envelope is not a JSON object' };
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { ok: false, reason: `payloadType is ${JSON.stringify(env.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}` };
  let payload: Buffer;
  try {
    payload = b64(env.payload, 'payload');
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  if (!Array.isArray(env.signatures) || env.signatures.length === 0) return { ok: false, reason: 'envelope has no signatures' };
  const message = pae(env.payloadType, payload);
  const keyid = keyIdOf(key);
  const matched = env.signatures.find((s) => {
    try {
      return verify(null, message, key, b64((s as Partial<DsseSignature> | null)?.sig, 'signature'));
    } catch {
      return false;
    }
  });
  if (!matched) return { ok: false, reason: `no signature in the envelope verifies with the key ${keyid.slice(0, 16)}…` };
  let statement: ProvenanceStatement;
  try {
    statement = asProvenanceStatement(JSON.parse(payload.toString('utf8')));
  } catch (err) {
    return { ok: false, reason: `signed payload is not a provenance statement: ${errorMessage(err)}` };
  }
  return { ok: true, payloadType: env.payloadType, payload, keyid, statement };
}

export interface ArtifactCheck {
  ok: boolean;
  /** one line per subject that does not match, e.g. "bin/hello: sha256 abc… on disk, statement says def…" */
  problems: string[];
}

/** Every subject's file exists under `dir` with the sha256 the statement names. */
export async function verifyArtifacts(statement: ProvenanceStatement, dir: string): Promise<ArtifactCheck> {
  const problems: string[] = [];
  for (const s of statement.subject) {
    const bad = artifactPathProblem(s.name);
    if (bad) {
      problems.push(`${JSON.stringify(s.name)}: ${bad}`);
      continue;
    }
    try {
      const actual = await sha256File(join(dir, s.name));
      if (actual !== s.digest.sha256.toLowerCase()) problems.push(`${s.name}: sha256 ${actual} on disk, statement says ${s.digest.sha256}`);
    } catch (err) {
      problems.push(`${s.name}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${errorMessage(err)})`}`);
    }
  }
  return { ok: problems.length === 0, problems };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Parses provenance.json text; BuilderError PROVENANCE when it is not JSON. */
export function parseEnvelope(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BuilderError('PROVENANCE', `${where} is not JSON: ${errorMessage(err)}`, { cause: err });
  }
}
