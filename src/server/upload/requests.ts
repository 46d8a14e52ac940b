// The client's `uploads` and `upload-retry` requests: a look at the outbox, and a nudge.
import { quote } from '../../common/quote.js';
import { BuilderError } from '../../common/errors.js';
import { isUuid } from '../../common/names.js';
import type { Request } from '../../protocol/messages.js';
import type { Replies } from '../../protocol/replies.js';
import { isUploadable } from '../../builder-web/exec-from-result.js';
import { UPLOAD_LIST_LIMIT, type Store } from '../store/index.js';
import { uploadInfo, type Uploader } from './uploader.js';

type UploadsRequest = Extract<Request, { op: 'uploads' }>;
type UploadRetryRequest = Extract<Request, { op: 'upload-retry' }>;

export function listUploads(store: Store, uploader: Uploader, req: UploadsRequest): Replies['uploads'] {
  const rows = store.uploads.list(req.failed === true);
  return { url: uploader.url, counts: store.uploads.counts(), limit: UPLOAD_LIST_LIMIT, uploads: rows.map(uploadInfo) };
}

export function retryUpload(store: Store, uploader: Uploader, req: UploadRetryRequest): Replies['upload-retry'] {
  if (req.all === true) return { queued: uploader.retry({ all: true }) };
  const uuid = req.uuid;
  if (uuid === undefined) throw new BuilderError('BAD_REQUEST', 'upload-retry needs a uuid or all');
  if (!isUuid(uuid)) throw new BuilderError('BAD_REQUEST', `expected a run uuid (8-4-4-4-12 lowercase hex), got ${quote(uuid)}`);
  const row = store.uploads.get(uuid);
  if (row?.state === 'uploaded') throw new BuilderError('ALREADY_UPLOADED', `run ${uuid} is uploaded already`);
  if (!row) {
    // a run finished while uploads were off can be sent on request
    const run = store.storedRun(uuid);
    if (!run) throw new BuilderError('NOT_FOUND', `no finished run ${uuid} with a stored result`);
    const result = run.result === null ? undefined : (JSON.parse(run.result) as Parameters<typeof isUploadable>[0]);
    if (!result || !isUploadable(result)) throw new BuilderError('NOT_A_BUILD', `run ${uuid} ended with an infrastructure failure: a retried run, not a build`);
    uploader.enqueue(run.uuid, run.job, run.dir, result);
    return { queued: 1 };
  }
  return { queued: uploader.retry({ uuid }) };
}
