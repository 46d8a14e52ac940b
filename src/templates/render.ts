// orb-build jobs become scripts through orb-build.template.PLATFORM: the server's --config-dir
// first, then the templates/ folder shipped with builder. A template is Handlebars (strict, no
// HTML escaping) and the original builder's %%OPAM_PACKAGE%% / %%PLATFORM%% placeholders still
// work, so its template files drop in unchanged. Every failure names the file and, where there
// is one, the line: a run must fail visibly rather than run a script with an empty string in it.
// Read at every render, so an edited template applies to the next run without a restart.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { BuilderError, errorMessage } from '../common/errors.js';
import { checkName } from '../common/names.js';

export const TEMPLATE_PREFIX = 'orb-build.template.';

/** The repository's top-level templates/ (this file runs as dist/src/templates/render.js). */
export const shippedTemplatesDir: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates');

export type TemplateSource = 'config' | 'shipped';

export interface TemplateDirs {
  /** the server's --config-dir; searched first */
  configDir?: string | undefined;
  /** defaults to shippedTemplatesDir; tests point it elsewhere */
  shippedDir?: string | undefined;
}

export interface TemplateRef {
  platform: string;
  path: string;
  source: TemplateSource;
}

export interface TemplateVars {
  opamPackage: string;
  platform: string;
  job: string;
  uuid: string;
  /** Unix seconds */
  sourceDateEpoch: number;
}

export interface RenderedTemplate {
  script: string;
  /** sha256 (hex) of the script's UTF-8 bytes, as the worker will run it */
  scriptSha256: string;
  template: TemplateRef & { sha256: string };
}

export const templateFileName = (platform: string): string => TEMPLATE_PREFIX + platform;

/** The names a template may use; anything else is a typo and fails the run. */
export const TEMPLATE_VARIABLES = ['opam_package', 'platform', 'job', 'uuid', 'source_date_epoch'] as const;
/**
 * Older names that keep working: builder-server's first templates saw {{package}}. Not listed
 * in TEMPLATE_VARIABLES (nor in messages), so new templates use the documented name.
 */
export const TEMPLATE_ALIASES = { package: 'opam_package' } as const;
const BUILTIN_HELPERS = new Set(['if', 'unless', 'each', 'with', 'lookup', 'log']);

const isFile = (path: string): boolean => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

const searchOrder = (dirs: TemplateDirs): { dir: string; source: TemplateSource }[] => [
  ...(dirs.configDir ? [{ dir: dirs.configDir, source: 'config' as const }] : []),
  { dir: dirs.shippedDir ?? shippedTemplatesDir, source: 'shipped' as const },
];

/**
 * Where the template for a platform is, or undefined. A config-dir file that exists but cannot
 * be read still wins: falling back to the shipped one would hide the operator's mistake.
 */
export function findTemplate(platform: string, dirs: TemplateDirs = {}): TemplateRef | undefined {
  checkName('platform', platform);
  for (const { dir, source } of searchOrder(dirs)) {
    const path = join(dir, templateFileName(platform));
    if (isFile(path)) return { platform, path, source };
  }
  return undefined;
}

/** Every platform with a template, config dir overriding shipped, sorted by platform. */
export function listTemplates(dirs: TemplateDirs = {}): TemplateRef[] {
  const found = new Map<string, TemplateRef>();
  for (const { dir, source } of searchOrder(dirs)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue; // a config dir without templates is normal
    }
    for (const name of names) {
      if (!name.startsWith(TEMPLATE_PREFIX)) continue;
      const platform = name.slice(TEMPLATE_PREFIX.length);
      const path = join(dir, name);
      if (found.has(platform) || !isFile(path)) continue;
      try {
        checkName('platform', platform);
      } catch {
        continue; // e.g. an editor's backup file "orb-build.template.debian-12~"
      }
      found.set(platform, { platform, path, source });
    }
  }
  return [...found.values()].sort((a, b) => (a.platform < b.platform ? -1 : a.platform > b.platform ? 1 : 0));
}

/** Finds, reads and renders the platform's template; BuilderError NO_TEMPLATE or BAD_TEMPLATE. */
export function renderTemplate(vars: TemplateVars, dirs: TemplateDirs = {}): RenderedTemplate {
  const ref = findTemplate(vars.platform, dirs);
  if (!ref) {
    const where = searchOrder(dirs).map((d) => d.dir).join(' or ');
    throw new BuilderError('NO_TEMPLATE', `no orb-build template for platform ${vars.platform}: no ${templateFileName(vars.platform)} in ${where}`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(ref.path);
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `template ${ref.path}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `template ${ref.path}: not valid UTF-8`, { cause: err });
  }
  const script = renderTemplateText(text, ref.path, vars);
  return {
    script,
    scriptSha256: sha256Hex(Buffer.from(script, 'utf8')),
    template: { ...ref, sha256: sha256Hex(bytes) },
  };
}

const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Renders template text; `file` is only for messages ("FILE:LINE: ..."). */
export function renderTemplateText(text: string, file: string, vars: TemplateVars): string {
  if (!Number.isSafeInteger(vars.sourceDateEpoch) || vars.sourceDateEpoch < 0) {
    throw new BuilderError('BAD_TEMPLATE', `template ${file}: source_date_epoch must be a non-negative integer, got ${vars.sourceDateEpoch}`);
  }
  let ast: hbs.AST.Program;
  try {
    ast = Handlebars.parse(text);
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `${file}:${errorLine(err) ?? '?'}: invalid template: ${firstLine(errorMessage(err))}`, { cause: err });
  }
  checkNames(ast, file);
  const context: Record<(typeof TEMPLATE_VARIABLES)[number] | keyof typeof TEMPLATE_ALIASES, string> = {
    opam_package: vars.opamPackage,
    platform: vars.platform,
    job: vars.job,
    uuid: vars.uuid,
    source_date_epoch: String(vars.sourceDateEpoch),
    package: vars.opamPackage,
  };
  let out: string;
  try {
    // strict stays on as a second net for what the static check cannot see (e.g. inside {{#with}})
    out = Handlebars.compile(ast, { noEscape: true, strict: true, knownHelpersOnly: true })(context);
  } catch (err) {
    throw new BuilderError('BAD_TEMPLATE', `${file}:${errorLine(err) ?? '?'}: ${firstLine(errorMessage(err)).replace(/ in \[object Object\]/, '')}`, { cause: err });
  }
  // The original's placeholders, replaced wherever they occur. split/join, not String.replace:
  // a replacement string there gives "$&" and friends a meaning.
  return out.split('%%OPAM_PACKAGE%%').join(vars.opamPackage).split('%%PLATFORM%%').join(vars.platform);
}

/** Handlebars puts the line in lineNumber (runtime, compile) or only in the text (parser). */
function errorLine(err: unknown): number | undefined {
  const n = (err as { lineNumber?: unknown }).lineNumber;
  if (typeof n === 'number') return n;
  const m = /on line (\d+)/.exec(errorMessage(err)) ?? / - (\d+):\d+$/m.exec(errorMessage(err));
  return m ? Number(m[1]) : undefined;
}

const firstLine = (s: string): string => {
  // the parser's message is "Parse error on line N:\n<source>\n---^\nExpecting ..."; keep the verdict
  const lines = s.split('\n');
  return lines.length >= 4 ? `${lines[0]} ${lines.slice(3).join(' ')}` : lines.join(' ');
};

type Node = hbs.AST.Node & Record<string, unknown>;

/**
 * Strict mode only catches a missing name in a plain {{name}}; {{#if opam_pakage}} or a helper
 * argument would silently be false or "". So walk the tree once and refuse any name we do not
 * provide, with its line.
 */
function checkNames(program: hbs.AST.Program, file: string): void {
  const known = new Set<string>([...TEMPLATE_VARIABLES, ...Object.keys(TEMPLATE_ALIASES)]);
  const fail = (node: hbs.AST.Node, what: string): never => {
    throw new BuilderError('BAD_TEMPLATE', `${file}:${node.loc?.start.line ?? '?'}: ${what}`);
  };
  const path = (p: hbs.AST.PathExpression, scope: Set<string>): void => {
    if (p.data || p.parts.length === 0) return; // @index, @root, this, .
    const head = p.parts[0] as string;
    if (!known.has(head) && !scope.has(head)) {
      fail(p, `unknown variable "${p.original}" (a template can use ${TEMPLATE_VARIABLES.join(', ')})`);
    }
    if (p.parts.length > 1 && !scope.has(head)) fail(p, `"${p.original}": ${head} is a string and has no fields`);
  };
  const expr = (node: Node | undefined | null, scope: Set<string>): void => {
    if (!node) return;
    switch (node.type) {
      case 'PathExpression':
        return path(node as unknown as hbs.AST.PathExpression, scope);
      case 'SubExpression':
        return call(node as unknown as hbs.AST.SubExpression, scope, true);
      default:
        return; // literals
    }
  };
  const call = (
    node: { path: hbs.AST.PathExpression | hbs.AST.Expression; params: hbs.AST.Expression[]; hash: hbs.AST.Hash | undefined },
    scope: Set<string>,
    isHelper: boolean,
  ): void => {
    const callee = node.path as hbs.AST.PathExpression;
    const helperName = callee.type === 'PathExpression' && !callee.data && callee.parts.length === 1 ? callee.parts[0] : undefined;
    if (isHelper || node.params.length > 0 || node.hash?.pairs.length || (helperName && BUILTIN_HELPERS.has(helperName))) {
      if (!helperName || !BUILTIN_HELPERS.has(helperName)) fail(callee, `unknown helper "${callee.original ?? '?'}" (a template can use ${[...BUILTIN_HELPERS].join(', ')})`);
    } else {
      expr(callee as unknown as Node, scope);
    }
    for (const p of node.params) expr(p as Node, scope);
    for (const pair of node.hash?.pairs ?? []) expr(pair.value as Node, scope);
  };
  const walk = (prog: hbs.AST.Program | undefined | null, scope: Set<string>): void => {
    if (!prog) return;
    const inner = prog.blockParams?.length ? new Set([...scope, ...prog.blockParams]) : scope;
    for (const st of prog.body) {
      switch (st.type) {
        case 'MustacheStatement':
          call(st as hbs.AST.MustacheStatement, inner, false);
          break;
        case 'BlockStatement': {
          const b = st as hbs.AST.BlockStatement;
          call(b, inner, true);
          walk(b.program, inner);
          walk(b.inverse, inner);
          break;
        }
        case 'PartialStatement':
        case 'PartialBlockStatement':
        case 'DecoratorBlock':
        case 'Decorator':
          fail(st, 'partials and decorators are not available in templates');
          break;
        default:
          break; // content and comments
      }
    }
  };
  walk(program, new Set());
}
