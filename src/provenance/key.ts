// The server's Ed25519 signing key for provenance. Made on first start next to the token, the
// private half mode 0600 like the token, the public half beside it for anyone who verifies
// (`builder-server --print-public-key` prints it). The key id is the sha256 of the public key's
// DER (SubjectPublicKeyInfo), so a verifier can tell which key signed without trusting a name.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuilderError } from '../common/errors.js';

export const PRIVATE_KEY_FILE = 'provenance-key.pem';
export const PUBLIC_KEY_FILE = 'provenance-key.pub.pem';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM, what --print-public-key prints and --verify-provenance reads */
  publicKeyPem: string;
  keyid: string;
  privateKeyFile: string;
  publicKeyFile: string;
  /** made by this call (first start) */
  created: boolean;
}

export const keyIdOf = (publicKey: KeyObject): string =>
  createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

/** Loads `dir`/provenance-key.pem, creating the pair when there is none. */
export function loadOrCreateSigningKey(dir: string): SigningKey {
  const privateKeyFile = join(dir, PRIVATE_KEY_FILE);
  let created = false;
  if (!existsSync(privateKeyFile)) created = createKeyFile(privateKeyFile);
  return { ...loadSigningKey(dir), created };
}

/** Loads an existing key; BuilderError KEY when missing, unreadable, not Ed25519 or readable by others. */
export function loadSigningKey(dir: string): SigningKey {
  const privateKeyFile = join(dir, PRIVATE_KEY_FILE);
  const publicKeyFile = join(dir, PUBLIC_KEY_FILE);
  let pem: string;
  try {
    const mode = statSync(privateKeyFile).mode & 0o777;
    // the same rule ssh applies: a signing key others can read signs for them too
    if (mode & 0o077) {
      throw new BuilderError('KEY', `provenance key ${privateKeyFile} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
    }
    pem = readFileSync(privateKeyFile, 'utf8');
  } catch (err) {
    if (err instanceof BuilderError) throw err;
    throw new BuilderError('KEY', `cannot read provenance key ${privateKeyFile}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new BuilderError('KEY', `provenance key ${privateKeyFile} is not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new BuilderError('KEY', `provenance key ${privateKeyFile} is ${privateKey.asymmetricKeyType ?? 'not an asymmetric key'}, expected ed25519`);
  }
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  // the public file is derived, so rewrite it when missing or stale (e.g. the key was replaced)
  let current: string | undefined;
  try {
    current = readFileSync(publicKeyFile, 'utf8');
  } catch {
    current = undefined;
  }
  if (current !== publicKeyPem) writeFileSync(publicKeyFile, publicKeyPem, { mode: 0o644 });
  return { privateKey, publicKey, publicKeyPem, keyid: keyIdOf(publicKey), privateKeyFile, publicKeyFile, created: false };
}

/** For `builder-server --print-public-key`: the PEM, creating the key on a first start. */
export const publicKeyPemOf = (dir: string): string => loadOrCreateSigningKey(dir).publicKeyPem;

/** Parses a public key PEM (a verifier's KEYFILE); BuilderError KEY when it is not Ed25519. */
export function parsePublicKey(pem: string, where = 'public key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new BuilderError('KEY', `${where} is not a PEM public key: ${(err as Error).message}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new BuilderError('KEY', `${where} is ${key.asymmetricKeyType ?? 'unknown'}, expected ed25519`);
  return key;
}

/**
 * Writes a fresh private key to `file` unless one appears meanwhile. A whole file is written
 * under a temporary name and hard-linked into place: link fails if the name exists, so two
 * servers starting at once never both win, and nobody ever reads half a key.
 */
function createKeyFile(file: string): boolean {
  const { privateKey } = generateKeyPairSync('ed25519');
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but an odd umask must not narrow the owner's bits either
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BuilderError('KEY', `cannot create provenance key ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  } finally {
    unlinkSync(tmp);
  }
}
