// The server's settings, checked once at start and frozen.
export interface ServerConfig {
  readonly stateDir: string;
  readonly configDir: string;
  readonly host: string;
  readonly port: number;
  readonly tokenFile: string | undefined;
  readonly upload: string | undefined;
  /** the upload password, from --upload-password-file or BUILDER_UPLOAD_PASSWORD (never argv) */
  readonly uploadPassword?: string | undefined;
  /** --tls-cert and --tls-key: every connection is TLS */
  readonly tls?: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** first delay before an upload is tried again, doubled per failed attempt */
  readonly uploadBackoffMs: number;
  readonly maxFrame: number;
  /** how long a disconnected worker's runs wait for it */
  readonly leaseMs: number;
  /** default per-job timeout */
  readonly timeoutSec: number;
  /** attempts for a job whose runs fail for infrastructure reasons */
  readonly maxAttempts: number;
  readonly retryBackoffMs: number;
  /** false with --no-provenance: no signing key is made and no provenance.json written (absent: on) */
  readonly provenance?: boolean;
  /** --notify-command: run through the shell with a state change's summary as JSON on stdin */
  readonly notifyCommand?: string | undefined;
  /** how long the notify command may run before it is killed */
  readonly notifyTimeoutMs?: number | undefined;
  /** --keep-runs: finished runs kept per job (absent: all) */
  readonly keepRuns?: number | undefined;
  /** --keep-days: days a finished run is kept (absent: forever) */
  readonly keepDays?: number | undefined;
  /** --http IP:PORT: the read-only web view, metrics and health check (off when absent) */
  readonly http?: { readonly host: string; readonly port: number } | undefined;
  /** --http-auth USER:PASSWORDFILE, read at start: basic authentication for every web page */
  readonly httpAuth?: { readonly user: string; readonly password: string } | undefined;
}
