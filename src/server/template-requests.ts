// The templates and render requests: which platforms have an orb-build template (and from
// where), and the script a job would run now on each, without running it.
import { BuilderError, errorMessage } from '../common/errors.js';
import { checkName } from '../common/names.js';
import { shown } from '../common/quote.js';
import { scriptBuffer, type Request } from '../protocol/messages.js';
import type { RenderedScript, Replies } from '../protocol/replies.js';
import type { RequestContext } from './requests.js';
import { renderOrbScript, shippedDir, sourceDateEpochOf, templatesIn } from './templates.js';

/** What {{uuid}} renders as in `render`: a run's uuid exists only once the run starts. */
export const PLACEHOLDER_UUID = '00000000-0000-0000-0000-000000000000';

export function templatesReply(ctx: RequestContext): Replies['templates'] {
  const templates = templatesIn(ctx.config.configDir).map(({ platform, source, path }) => ({ platform, source, path }));
  const have = new Set(templates.map((t) => t.platform));
  return {
    configDir: ctx.config.configDir,
    shippedDir,
    templates,
    without: ctx.store.platforms().filter((p) => p.dropped === 0 && !have.has(p.name)).map((p) => p.name),
  };
}

export function renderJob(ctx: RequestContext, req: Extract<Request, { op: 'render' }>): Replies['render'] {
  const { store, config } = ctx;
  const job = store.job(req.name);
  if (!job) throw new BuilderError('NO_JOB', `no job named ${shown(req.name)}`);
  if (req.platform !== undefined) checkName('platform', req.platform);
  const reply = { name: job.name, kind: job.kind, uuid: PLACEHOLDER_UUID, sourceDateEpoch: sourceDateEpochOf(job) };
  if (job.kind === 'script') {
    if (req.platform !== undefined && req.platform !== job.platform) {
      throw new BuilderError('NO_PLATFORM', `job ${job.name} runs on ${job.platform}, not on ${shown(req.platform)}`);
    }
    return { ...reply, scripts: [{ platform: job.platform ?? '', script: scriptBuffer(job.script ?? '') }] };
  }
  // every platform an orb-build job would run on once a worker of it connects
  const platforms = req.platform !== undefined
    ? [req.platform]
    : templatesIn(config.configDir).map((t) => t.platform).filter((p) => !store.isDropped(p));
  const scripts = platforms.map((platform): RenderedScript => {
    try {
      const r = renderOrbScript(config.configDir, job, platform, PLACEHOLDER_UUID);
      const { path, source, sha256 } = r.template;
      return { platform, script: r.script, template: { platform, path, source, sha256 } };
    } catch (err) {
      return { platform, error: errorMessage(err) };
    }
  });
  return { ...reply, scripts };
}
