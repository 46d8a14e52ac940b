// Limits both ends check: the client before it sends (so a user hears the limit, not a reset
// connection), the server again on what arrives.
import { DEFAULT_MAX_FRAME } from './framing.js';

/** A job's script; well inside a frame, with room for the rest of the request or job message. */
export const MAX_SCRIPT_BYTES = DEFAULT_MAX_FRAME / 2;
/** A job's timeout, seconds: from one second to a week. */
export const MIN_TIMEOUT_SEC = 1;
export const MAX_TIMEOUT_SEC = 7 * 86_400;
/** info-page: the most jobs one page holds (a page of JobInfo stays well inside a frame). */
export const MAX_INFO_PAGE = 1000;
/** info-summary: the most next-due jobs it lists (due), the queued names per platform and the running runs it shows. */
export const MAX_INFO_DUE = 100;
export const INFO_QUEUE_HEAD = 3;
export const INFO_RUNNING_SHOWN = 20;
