// The server's side of orb-build templates: where it looks (its --config-dir, then the shipped
// templates/ folder; src/templates/render.ts does the finding and rendering) and what a run's
// template sees. Rendered at each run's start, so an edited template applies to the next run
// without a restart.
import { findTemplate, listTemplates, renderTemplate, shippedTemplatesDir, type RenderedTemplate, type TemplateRef } from '../templates/render.js';
import type { JobRow } from './store/index.js';

export const hasTemplate = (configDir: string, platform: string): boolean => findTemplate(platform, { configDir }) !== undefined;

export const templatesIn = (configDir: string): TemplateRef[] => listTemplates({ configDir });

export const shippedDir = shippedTemplatesDir;

/** A job's SOURCE_DATE_EPOCH: stored per job; a row from before that falls back to its creation. */
export const sourceDateEpochOf = (job: Pick<JobRow, 'source_date_epoch' | 'created'>): number =>
  job.source_date_epoch ?? Math.floor(job.created / 1000);

/** The script of an orb-build job's run; BuilderError NO_TEMPLATE or BAD_TEMPLATE (with FILE:LINE). */
export function renderOrbScript(configDir: string, job: JobRow, platform: string, uuid: string): RenderedTemplate {
  return renderTemplate(
    { opamPackage: job.package ?? '', platform, job: job.name, uuid, sourceDateEpoch: sourceDateEpochOf(job) },
    { configDir },
  );
}
