// Encrypted links with Node's own tls. The HMAC hello still runs on top, so TLS adds privacy and
// the server's identity; the token stays what proves who may do what.
// A peer trusts the server by a CA (--tls-ca FILE; the system's CAs with --tls alone) or by the
// pinned SHA-256 fingerprint of its certificate (--server-fingerprint SHA256:..., printed by the
// server at start), which needs no CA at all and suits a self-signed certificate.
import { readFileSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket, type TlsOptions } from 'node:tls';
import { BuilderError, UsageError } from '../common/errors.js';

/** How a peer checks the server: by CA (system CAs when none is given) or a pinned fingerprint. */
export interface PeerTls {
  ca?: Buffer;
  /** SHA-256 of the certificate's DER, as Node writes it: "AB:CD:..." */
  fingerprint?: string;
}

const HEX_PAIRS = /^[0-9A-F]{64}$/;

/** "SHA256:AB:CD:..." or "SHA256:abcd..." (as openssl x509 -fingerprint -sha256 prints it, too). */
export function parseFingerprint(raw: string): string {
  const m = /^(?:SHA256:|sha256 Fingerprint=)?([0-9A-Fa-f:]+)$/.exec(raw.trim());
  const hex = m?.[1]?.replace(/:/g, '').toUpperCase() ?? '';
  if (!HEX_PAIRS.test(hex)) throw new UsageError(`--server-fingerprint: expected SHA256: and 64 hex digits (colons allowed), got "${raw.slice(0, 120)}"`);
  return hex.match(/../g)!.join(':');
}

export const showFingerprint = (fp: string): string => `SHA256:${fp}`;

/** The peer's flags (--tls, --tls-ca, --server-fingerprint) into its TLS settings, or undefined. */
export function peerTlsFrom(values: Record<string, string>, booleans: Set<string>): PeerTls | undefined {
  const caFile = values['tls-ca'];
  const pin = values['server-fingerprint'];
  if (!booleans.has('tls') && caFile === undefined && pin === undefined) return undefined;
  const out: PeerTls = {};
  if (caFile !== undefined) {
    try {
      out.ca = readFileSync(caFile);
    } catch (err) {
      throw new BuilderError('TLS', `cannot read --tls-ca ${caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  if (pin !== undefined) out.fingerprint = parseFingerprint(pin);
  return out;
}

/** The server's certificate and key, and the fingerprint peers may pin. */
export function loadServerTls(certFile: string, keyFile: string): { options: TlsOptions; fingerprint: string } {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new BuilderError('TLS', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  const cert = read('--tls-cert', certFile);
  const key = read('--tls-key', keyFile);
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(cert).fingerprint256;
  } catch (err) {
    throw new BuilderError('TLS', `--tls-cert ${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  return { options: { cert, key, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }, fingerprint };
}

/** Loopback (127.0.0.0/8, which holds the orb interface's 127.0.2.0/24, and ::1): no TLS needed. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  return /^::ffff:127\./i.test(host);
}

/** Opens a TLS connection and checks the server as `tls` says; rejects with a TLS BuilderError. */
export function connectTls(host: string, port: number, tls: PeerTls): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const where = `${host}:${port}`;
    const socket = tlsConnect({
      host, port,
      ...(isIP(host) ? {} : { servername: host }),
      ...(tls.ca ? { ca: tls.ca } : {}),
      // a pinned fingerprint replaces the CA and host name checks: it names the one certificate
      ...(tls.fingerprint ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {}),
      minVersion: 'TLSv1.2',
    });
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      if (tls.fingerprint) {
        const raw = socket.getPeerCertificate().raw;
        const got = raw ? createHash('sha256').update(raw).digest('hex').toUpperCase().match(/../g)!.join(':') : 'none';
        if (got !== tls.fingerprint) {
          socket.destroy();
          reject(new BuilderError('TLS', `the server at ${where} presented certificate SHA256:${got}, not the pinned ${showFingerprint(tls.fingerprint)}`));
          return;
        }
      }
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'ECONNRESET' || /disconnected before secure/.test(err.message) ? ' (does the server use TLS? it needs --tls-cert and --tls-key)' : '';
      reject(new BuilderError(err.code === 'ECONNREFUSED' ? 'CONNECT' : 'TLS', `TLS connection to ${where} failed: ${err.message}${hint}`, { cause: err }));
    };
    socket.once('error', onError);
  });
}
