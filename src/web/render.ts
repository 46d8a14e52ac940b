// The web view's HTML: Handlebars templates from templates/web/ (layout.hbs around one template
// per page, partials/*.hbs), compiled once when the view starts. Handlebars escapes every
// {{value}} for HTML; no template uses the unescaped {{{...}}} form and no helper returns a
// SafeString, so a job name, a path or a console line is always text. The one SafeString is a
// page's own rendered (already escaped) output, handed to the layout.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { BuilderError } from '../common/errors.js';

/** templates/web/ of the repository (this file runs as dist/src/web/render.js). */
export const webTemplatesDir: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates', 'web');

export type PageName = 'front' | 'job' | 'run' | 'error';

export interface Renderer {
  page(name: PageName, title: string, data: object): string;
  /** static/NAME (style.css, live.js), or undefined */
  asset(name: string): { body: Buffer; type: string } | undefined;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** 1 h 02 min, 3 min 04 s, 5.2 s */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** a console line's offset: +M:SS.mmm */
export function formatOffset(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `+${Math.floor(s / 60)}:${pad(s % 60)}.${pad(ms % 1000, 3)}`;
}

const formatTime = (iso: string | null | undefined): string => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

function makeEnv(dir: string): typeof Handlebars {
  const hb = Handlebars.create();
  hb.registerHelper('time', (iso: string | null) => formatTime(iso));
  hb.registerHelper('duration', (ms: number | null) => formatDuration(ms));
  hb.registerHelper('bytes', (n: number | null) => formatBytes(n));
  hb.registerHelper('offset', (ms: number) => formatOffset(ms));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('gt', (a: number, b: number) => a > b);
  hb.registerHelper('join', (list: unknown[], sep: unknown) => (Array.isArray(list) ? list.join(typeof sep === 'string' ? sep : ', ') : ''));
  hb.registerHelper('json', (v: unknown) => JSON.stringify(v, null, 2));
  // path segments for links: a name or an artifact path keeps its slashes, everything else encoded
  hb.registerHelper('urlpath', (v: string) => String(v).split('/').map(encodeURIComponent).join('/'));
  hb.registerHelper('octal', (n: number) => `0${(n & 0o7777).toString(8)}`);
  hb.registerHelper('add', (a: number, b: number) => a + b);
  hb.registerHelper('concat', (...args: unknown[]) => args.slice(0, -1).map(String).join(''));
  // first / previous / next / last links of a paged listing, or null when it fits on one page
  hb.registerHelper('pager', (p: { page: number; pages: number }, base: string) => {
    if (!p || p.pages <= 1) return null;
    const href = (n: number): string => `${base}${base.includes('?') ? '&' : '?'}page=${n}`;
    return {
      page: p.page, pages: p.pages,
      first: p.page > 1 ? href(1) : null, prev: p.page > 1 ? href(p.page - 1) : null,
      next: p.page < p.pages ? href(p.page + 1) : null, last: p.page < p.pages ? href(p.pages) : null,
    };
  });
  // newest / newer / older / oldest links of a job's runs, paged by cursor, or null when they fit on one page
  hb.registerHelper('runsPager', (r: { newer: string | null; older: string | null }, base: string) => {
    if (!r || (r.newer === null && r.older === null)) return null;
    const href = (q: string): string => `${base}${base.includes('?') ? '&' : '?'}${q}`;
    return {
      newest: r.newer !== null ? base : null, newer: r.newer !== null ? href(`after=${encodeURIComponent(r.newer)}`) : null,
      older: r.older !== null ? href(`before=${encodeURIComponent(r.older)}`) : null, oldest: r.older !== null ? href('page=last') : null,
    };
  });
  const partials = join(dir, 'partials');
  for (const f of readdirSync(partials)) {
    if (f.endsWith('.hbs')) hb.registerPartial(f.slice(0, -4), readFileSync(join(partials, f), 'utf8'));
  }
  return hb;
}

export function makeRenderer(dir: string = webTemplatesDir): Renderer {
  let hb: typeof Handlebars;
  const compiled = new Map<string, HandlebarsTemplateDelegate>();
  try {
    hb = makeEnv(dir);
    for (const name of ['layout', 'front', 'job', 'run', 'error']) {
      compiled.set(name, hb.compile(readFileSync(join(dir, `${name}.hbs`), 'utf8'), { strict: false, noEscape: false }));
    }
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `web view templates in ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const [name, type] of [['style.css', 'text/css; charset=utf-8'], ['live.js', 'text/javascript; charset=utf-8']] as const) {
    assets.set(name, { body: readFileSync(join(dir, 'static', name)), type });
  }
  return {
    page(name, title, data) {
      const body = compiled.get(name)!(data);
      return compiled.get('layout')!({ title, body: new hb.SafeString(body), live: name === 'run' && (data as { live?: boolean }).live });
    },
    asset: (name) => assets.get(name),
  };
}
