// What changed between two versions of an artifact, as text to store with the run and print in
// `compare`. diffoscope (the Reproducible Builds project's tool, Debian package
// diffoscope-minimal) is the best answer when installed: it looks inside archives, ELF files and
// more. Without it: a unified line diff for text, the first differing byte for anything else.
import { constants, accessSync, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { BuilderError, errorMessage } from '../common/errors.js';
import { unifiedDiff } from './line-diff.js';

export type DiffTool = 'identical' | 'diffoscope' | 'line-diff' | 'first-byte';

export interface DiffReport {
  tool: DiffTool;
  text: string;
  /** the report was cut at maxReportBytes (or diffoscope's own limit) */
  truncated: boolean;
}

export interface DiffReportOptions {
  /** names shown in the report instead of the file paths (e.g. "UUID1/bin/hello") */
  labelA?: string;
  labelB?: string;
  /** diffoscope executable; undefined: look on PATH; false: never use it */
  diffoscope?: string | false;
  /** diffoscope gets this long before it is killed and the built-in report is used (default 120 s) */
  timeoutMs?: number;
  /** reports are cut to this size: they are stored with the run (default 1 MiB) */
  maxReportBytes?: number;
  /** text files up to this size get a line diff; larger ones are compared byte-wise (default 1 MiB) */
  maxTextBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_MAX_REPORT = 1 << 20;
const DEFAULT_MAX_TEXT = 1 << 20;
const CHUNK = 64 * 1024;

/** The diffoscope executable on PATH, or undefined. */
export function findDiffoscope(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'diffoscope');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const statOf = async (file: string): Promise<Stats> => {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a regular file');
    return s;
  } catch (err) {
    throw new BuilderError('DIFF', `cannot compare ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
};

export async function diffReport(fileA: string, fileB: string, opts: DiffReportOptions = {}): Promise<DiffReport> {
  const labelA = opts.labelA ?? fileA;
  const labelB = opts.labelB ?? fileB;
  const maxReport = opts.maxReportBytes ?? DEFAULT_MAX_REPORT;
  const [sa, sb] = await Promise.all([statOf(fileA), statOf(fileB)]);
  const first = await firstDifference(fileA, fileB);
  if (first === undefined) return { tool: 'identical', text: `${labelA} and ${labelB} are identical\n`, truncated: false };

  let note = '';
  const tool = opts.diffoscope === false ? undefined : (opts.diffoscope ?? findDiffoscope());
  if (tool) {
    const r = await runDiffoscope(tool, fileA, fileB, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxReport);
    if ('report' in r) return r.report;
    note = `(${r.problem}; built-in comparison instead)\n`;
  }
  const maxText = opts.maxTextBytes ?? DEFAULT_MAX_TEXT;
  if (sa.size <= maxText && sb.size <= maxText) {
    const [ta, tb] = await Promise.all([readText(fileA), readText(fileB)]);
    if (ta !== undefined && tb !== undefined) {
      const diff = unifiedDiff(ta, tb, { labelA, labelB });
      if (diff) return cut({ tool: 'line-diff', text: note + diff.text, truncated: diff.truncated }, maxReport);
      note += '(too many changed lines for a line diff)\n';
    }
  }
  return cut({ tool: 'first-byte', text: note + (await describeFirstDifference(fileA, fileB, labelA, labelB, first, sa.size, sb.size)), truncated: false }, maxReport);
}

type DiffoscopeOutcome = { report: DiffReport } | { problem: string };

/** diffoscope exits 0 for no differences, 1 for differences (our normal case), 2 on error. */
async function runDiffoscope(tool: string, a: string, b: string, timeoutMs: number, maxReport: number): Promise<DiffoscopeOutcome> {
  const r = await execa(tool, ['--text', '-', '--text-color', 'never', '--no-progress', '--max-text-report-size', String(maxReport), a, b], {
    reject: false,
    timeout: timeoutMs,
    maxBuffer: maxReport + 4096,
    stdin: 'ignore',
    // C.UTF-8: reports must not depend on the server's locale
    env: { LC_ALL: 'C.UTF-8', TZ: 'UTC' },
    stripFinalNewline: false,
  });
  if (r.timedOut) return { problem: `diffoscope did not finish within ${Math.round(timeoutMs / 1000)} s` };
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  if (r.exitCode === 1 || (r.isMaxBuffer && stdout)) {
    return { report: cut({ tool: 'diffoscope', text: stdout, truncated: r.isMaxBuffer || /^Max (text )?report size reached/m.test(stdout) }, maxReport) };
  }
  if (r.exitCode === 0) return { problem: 'diffoscope found no differences' }; // it normalises some, e.g. metadata
  const stderr = typeof r.stderr === 'string' ? r.stderr.trim().split('\n').pop() : '';
  return { problem: `diffoscope failed (${r.exitCode !== undefined ? `exit ${r.exitCode}` : (r.signal ?? 'no exit code')}${stderr ? `: ${stderr}` : ''})` };
}

function cut(report: DiffReport, maxBytes: number): DiffReport {
  const bytes = Buffer.from(report.text, 'utf8');
  if (bytes.length <= maxBytes) return report;
  // cut on a character boundary: the decoder drops a split sequence's replacement at the end
  const text = new TextDecoder('utf-8').decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, '');
  return { ...report, text: `${text}\n... (report truncated at ${maxBytes} bytes)\n`, truncated: true };
}

/** The file as a string when it is text (valid UTF-8 without NUL bytes), else undefined. */
async function readText(file: string): Promise<string | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = await fh.readFile();
    if (buf.includes(0)) return undefined;
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * The offset of the first byte where the files differ (the shorter one's length when one is a
 * prefix of the other), or undefined when identical. Reads both in 64 KiB pieces.
 */
export async function firstDifference(fileA: string, fileB: string): Promise<number | undefined> {
  const [fa, fb] = await Promise.all([open(fileA, 'r'), open(fileB, 'r')]);
  try {
    const ba = Buffer.alloc(CHUNK);
    const bb = Buffer.alloc(CHUNK);
    for (let pos = 0; ; ) {
      const [ra, rb] = await Promise.all([readFull(fa, ba, pos), readFull(fb, bb, pos)]);
      const n = Math.min(ra, rb);
      for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return pos + i;
      if (ra !== rb) return pos + n;
      if (ra === 0) return undefined;
      pos += n;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** fills buf from pos unless the file ends first: short reads must not shift the comparison */
async function readFull(fh: Awaited<ReturnType<typeof open>>, buf: Buffer, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function describeFirstDifference(a: string, b: string, labelA: string, labelB: string, offset: number, sizeA: number, sizeB: number): Promise<string> {
  const lines = [`Binary files ${labelA} (${sizeA} bytes) and ${labelB} (${sizeB} bytes) differ`];
  if (offset >= Math.min(sizeA, sizeB)) {
    const [shorter, longer] = sizeA < sizeB ? [labelA, labelB] : [labelB, labelA];
    lines.push(`${shorter} is a prefix of ${longer}: they differ from byte offset ${offset} (0x${offset.toString(16)}), where ${shorter} ends`);
  } else {
    lines.push(`first difference at byte offset ${offset} (0x${offset.toString(16)})`);
  }
  // the 16-byte row around the difference from each file, as `xxd` would show it
  const row = Math.floor(offset / 16) * 16;
  for (const [file, label] of [[a, labelA], [b, labelB]] as const) {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(16);
      const { bytesRead } = await fh.read(buf, 0, 16, row);
      const hex = [...buf.subarray(0, bytesRead)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
      lines.push(`  ${label}: ${row.toString(16).padStart(8, '0')}: ${hex}`);
    } finally {
      await fh.close();
    }
  }
  return lines.join('\n') + '\n';
}
