// `npm run build` runs tsc, then this: each program's compiled tree (dist/src/PROGRAM/main.js)
// bundled by esbuild into one CommonJS file, dist/bundle/bin/builder-PROGRAM.cjs, which is what
// package.json "bin" and the staged launchers run. dist/src/PROGRAM/main.js keeps working (the
// tests run it); the bundle only starts faster:
//   - one file read and compiled instead of dozens resolved and linked by the ESM loader;
//   - CommonJS on purpose: esbuild initialises a module of the bundle when it is first needed,
//     and a `require('node:tls')` inside it runs only then, where an ESM bundle hoists every
//     built-in import to the top and loads them all at start-up. So a module reached only by
//     `await import()` (a command's heavy part, cbor-x before the first connection, node-cron
//     for --cron) costs nothing until used.
// The bundle sits three directories below the package root, as dist/src/common/version.js
// does, so the code that finds package.json and templates/ from import.meta.url finds the same
// files from either place (import.meta.url is the bundle's own URL in it).
// A module that loads a file of the tree at run time by its path (a worker thread's script)
// would not find it beside the bundle: such a file must become an entry point here.
// Native and big run-time dependencies stay outside, loaded from node_modules when needed:
// better-sqlite3 and cbor-extract (native), handlebars and undici. The client must not load
// any of them: the build fails if its bundle refers to one.
import { build, type Metafile } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { SERVER_NODE_FLAGS } from '../src/server/node-flags.js';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// compiled to dist/scripts/bundle.js: the repository root is two levels up
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE_DIR = join('dist', 'bundle', 'bin');
export const bundlePath = (program: string): string => join(root, BUNDLE_DIR, `builder-${program}.cjs`);

const EXTERNAL = ['better-sqlite3', 'cbor-extract', 'handlebars', 'undici'];
/** what the client never needs: a server's database, templates, HTTP */
const NOT_IN_CLIENT = ['better-sqlite3', 'handlebars', 'undici'];

async function bundle(program: string): Promise<Metafile> {
  const client = program === 'client';
  const result = await build({
    entryPoints: [join(root, 'dist', 'src', program, 'main.js')],
    outfile: bundlePath(program),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: EXTERNAL,
    // cbor-x's package.json sends `import` to its ESM entry, which finds cbor-extract through import.meta.url
    conditions: ['node', 'import'],
    mainFields: ['module', 'main'],
    define: { 'import.meta.url': '__bundle_url' },
    // the client's replies are small but for info --all: cbor-x's JS alone (its `cbor-x/encode`
    // entry, which has the decoder too), without the native string extractor (cbor-extract)
    // and its loader, which cost more at start-up than they save on a small reply
    ...(client ? { alias: { 'cbor-x': 'cbor-x/encode' } } : {}),
    // esbuild keeps the entry's #! line first and puts this after it
    banner: { js: `const __bundle_url = require('node:url').pathToFileURL(__filename).href;` },
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  return result.metafile;
}

/**
 * The server's bundle, run directly (npm's bin), starts node with the server's V8 options
 * (node-flags.ts); `env -S` splits them (GNU coreutils 8.30 and FreeBSD's env both have it).
 */
function serverShebang(): void {
  const file = bundlePath('server');
  const text = readFileSync(file, 'utf8');
  if (!text.startsWith('#!')) throw new Error(`bundle: ${file} has no #! line to put the server's node options in`);
  writeFileSync(file, `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}${text.slice(text.indexOf('\n'))}`, { mode: 0o755 });
}

async function main(): Promise<void> {
  for (const program of ['client', 'server', 'worker', 'inspect']) {
    const meta = await bundle(program);
    if (program === 'server') serverShebang();
    if (program !== 'client') continue;
    const imports = Object.values(meta.inputs).flatMap((i) => i.imports.map((x) => x.path));
    const bad = NOT_IN_CLIENT.filter((d) => imports.some((p) => p === d || p.startsWith(`${d}/`)));
    if (bad.length > 0) throw new Error(`bundle: builder-client must not load ${bad.join(', ')}; something in src/client/ imports it`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
