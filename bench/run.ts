// `npm run bench`: prints ONE JSON object on stdout, {core, sandboxes, upload, parse, repro, fetch, web, cli, scale, attack, fuzz, machine}; progress
// goes to stderr. A part that is missing or fails is reported as {error: message} and the others
// still run.
//   node dist/bench/run.js                      every part
//   node dist/bench/run.js core sandboxes       some parts
//   node dist/bench/run.js core:firstLine core:rss   some figures of core
// core parts: firstLine, jobsPerSecond, schedule, rss. parse: frame decode+check per second.
// repro: the server's cost of completing a run with 50 x 1 MiB artifacts, provenance on vs off.
// fetch: builder-client artifacts of a 1 GiB stored artifact: client and server RSS, throughput vs cp.
// web: the web view's page latency on a big history, SSE latency, memory while streaming a huge console.
// cli: builder-client as whole processes (--help, schedule, info) against 10,000 jobs vs node -e 0; info's server-side time.
// scale: the ceiling of one server (bench/scale.ts): big schedule, due wave, many workers, big history, slow consumers,
//   a console at the default cap; scale:jobs, scale:due, scale:workers, scale:history, scale:slow, scale:console for one of them.
// attack: hostile peers (huge and tagged frames, floods, a client that never reads) against a
// server while a client works: peak RSS, the client's slow-down. fuzz: the suite's properties, longer.
import { cpus, totalmem } from 'node:os';
import { errorMessage } from '../src/common/errors.js';
import { CORE_PARTS, benchCore, type CorePart } from './core.js';
import { SCALE_PARTS, benchScale, type ScalePart } from './scale.js';

const PARTS = ['core', 'sandboxes', 'upload', 'parse', 'repro', 'fetch', 'web', 'cli', 'scale', 'attack', 'fuzz'] as const;
type Part = (typeof PARTS)[number];

const USAGE = `usage: node dist/bench/run.js [PART...]
parts: ${PARTS.join(', ')} (default: all); core:FIGURE for one figure of core (${CORE_PARTS.join(', ')});
scale:FIGURE for one figure of scale (${SCALE_PARTS.join(', ')})`;

const progress = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

/** Runs an optional bench module's function; a missing module or a failure becomes {error}. */
async function optional(file: string, fn: string): Promise<unknown> {
  let mod: Record<string, unknown>;
  try {
    // a variable specifier: the module may not exist yet, and must not break the build
    const spec: string = file;
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { error: code === 'ERR_MODULE_NOT_FOUND' ? `not available: ${file} is missing (${errorMessage(err)})` : errorMessage(err) };
  }
  const f = mod[fn];
  if (typeof f !== 'function') return { error: `${file} does not export ${fn}()` };
  try {
    return await (f as () => Promise<unknown>)();
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    return;
  }
  const parts = new Set<Part>();
  const coreParts = new Set<CorePart>();
  const scaleParts = new Set<ScalePart>();
  for (const a of args) {
    const [part, figure] = a.split(':', 2) as [string, string | undefined];
    if (!(PARTS as readonly string[]).includes(part)) {
      console.error(`bench: unknown part "${a}"\n${USAGE}`);
      process.exit(2);
    }
    if (figure !== undefined) {
      if (part === 'core' && (CORE_PARTS as readonly string[]).includes(figure)) coreParts.add(figure as CorePart);
      else if (part === 'scale' && (SCALE_PARTS as readonly string[]).includes(figure)) scaleParts.add(figure as ScalePart);
      else {
        console.error(`bench: unknown figure "${a}"\n${USAGE}`);
        process.exit(2);
      }
    }
    parts.add(part as Part);
  }
  if (parts.size === 0) PARTS.forEach((p) => parts.add(p));

  const out: Record<string, unknown> = {};
  if (parts.has('core')) {
    progress('core');
    try {
      out.core = await benchCore(coreParts.size > 0 ? [...coreParts] : CORE_PARTS);
    } catch (err) {
      out.core = { error: errorMessage(err) };
    }
  }
  if (parts.has('sandboxes')) {
    progress('sandboxes');
    out.sandboxes = await optional('./sandbox-overhead.js', 'benchSandboxes');
  }
  if (parts.has('upload')) {
    progress('upload');
    out.upload = await optional('./upload.js', 'benchUpload');
  }
  if (parts.has('parse')) {
    progress('parse');
    out.parse = await optional('./parse.js', 'benchParse');
  }
  if (parts.has('repro')) {
    progress('repro');
    out.repro = await optional('./repro.js', 'benchRepro');
  }
  if (parts.has('fetch')) {
    progress('fetch');
    out.fetch = await optional('./fetch.js', 'benchFetch');
  }
  if (parts.has('web')) {
    progress('web');
    out.web = await optional('./web.js', 'benchWeb');
  }
  if (parts.has('cli')) {
    progress('cli');
    out.cli = await optional('./cli.js', 'benchCli');
  }
  if (parts.has('scale')) {
    progress('scale');
    try {
      out.scale = await benchScale(scaleParts.size > 0 ? [...scaleParts] : SCALE_PARTS);
    } catch (err) {
      out.scale = { error: errorMessage(err) };
    }
  }
  if (parts.has('attack')) {
    progress('attack');
    out.attack = await optional('./attack.js', 'benchAttack');
  }
  if (parts.has('fuzz')) {
    progress('fuzz');
    out.fuzz = await optional('./fuzz.js', 'benchFuzz');
  }
  const cpu = cpus();
  out.machine = {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? null,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
