// Uploads to builder-web as a server part: every stored result goes into the outbox, the
// uploader sends it, and the client's `uploads` and `upload-retry` requests look at and nudge it.
// Without --upload the outbox is left alone (and forgets since when uploads were on).
import { BuilderError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { isUuid } from '../../common/names.js';
import type { Request } from '../../protocol/messages.js';
import type { ServerConfig } from '../config.js';
import type { RunningServer } from '../server.js';
import { isUploadable } from '../../builder-web/exec-from-result.js';
import { LIST_LIMIT, openOutbox } from './outbox.js';
import { parseUploadUrl } from './sender.js';
import { Uploader, uploadInfo } from './uploader.js';

/** Retries never wait longer than this, however long builder-web has been away. */
const MAX_DELAY_MS = 3_600_000;

export function attachUploads(server: RunningServer, config: ServerConfig, log: Logger): Uploader | undefined {
  const outbox = openOutbox(server.store);
  if (config.upload === undefined) {
    outbox.disable();
    return undefined;
  }
  const target = parseUploadUrl(config.upload);
  const uploader = new Uploader(outbox, { target, baseDelayMs: config.uploadBackoffMs, maxDelayMs: Math.max(MAX_DELAY_MS, config.uploadBackoffMs) }, log);
  server.coordinator.onFinished((run, result, dir) => uploader.enqueue(run.uuid, run.job, dir, result));

  server.extra.set('uploads', (req: Request) => {
    const failed = req.op === 'uploads' && req.failed === true;
    const rows = outbox.list(failed);
    return { url: target.url, counts: outbox.counts(), limit: LIST_LIMIT, uploads: rows.map(uploadInfo) };
  });

  server.extra.set('upload-retry', (req: Request) => {
    if (req.op !== 'upload-retry') throw new BuilderError('BAD_REQUEST', `expected upload-retry, got ${req.op}`);
    if (req.all === true) return { queued: uploader.retry({ all: true }) };
    const uuid = req.uuid;
    if (uuid === undefined) throw new BuilderError('BAD_REQUEST', 'upload-retry needs a uuid or all');
    if (!isUuid(uuid)) throw new BuilderError('BAD_REQUEST', `expected a run uuid (8-4-4-4-12 lowercase hex), got "${uuid}"`);
    const row = outbox.get(uuid);
    if (row?.state === 'uploaded') throw new BuilderError('ALREADY_UPLOADED', `run ${uuid} is uploaded already`);
    if (!row) {
      // a run finished while uploads were off can be sent on request
      const run = outbox.finishedRun(uuid);
      if (!run) throw new BuilderError('NOT_FOUND', `no finished run ${uuid} with a stored result`);
      const result = run.result === null ? undefined : (JSON.parse(run.result) as Parameters<typeof isUploadable>[0]);
      if (!result || !isUploadable(result)) throw new BuilderError('NOT_A_BUILD', `run ${uuid} ended with an infrastructure failure: a retried run, not a build`);
      uploader.enqueue(run.uuid, run.job, run.dir, result);
      return { queued: 1 };
    }
    return { queued: uploader.retry({ uuid }) };
  });

  uploader.start();
  const close = server.close.bind(server);
  server.close = async () => {
    uploader.stop();
    await close();
  };
  return uploader;
}
