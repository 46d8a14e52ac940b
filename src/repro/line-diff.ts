// A unified line diff for text artifacts when diffoscope is not installed. Myers' O((N+M)·D)
// algorithm after stripping the common head and tail, which is all a typical non-reproducible
// text file needs (a timestamp or a path on a few lines). The edit distance is capped so a
// completely different 1 MiB file cannot cost quadratic time or memory; the caller then falls
// back to the first differing byte.

export interface UnifiedDiffOptions {
  labelA: string;
  labelB: string;
  /** unchanged lines shown around each change (default 3, as diff -u) */
  context?: number;
  /** give up above this many inserted + deleted lines (default 2000) */
  maxEdits?: number;
  /** stop the report after this many lines (default 2000) */
  maxLines?: number;
}

export interface UnifiedDiff {
  text: string;
  truncated: boolean;
}

type Op = { kind: ' ' | '-' | '+'; line: string };

/** Lines with their terminator, so a missing final newline is a difference diff can show. */
export const splitLines = (text: string): string[] => text.match(/[^\n]*\n|[^\n]+$/g) ?? [];

/**
 * The edit script from a to b, or undefined when it would need more than maxEdits edits.
 * Classic Myers: V[k] is the furthest x on diagonal k = x - y after d edits; each round's V is
 * kept (only its -d..d part) to walk back the path.
 */
function myers(a: readonly string[], b: readonly string[], maxEdits: number): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, maxEdits);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max && found < 0; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number))
        ? (v[offset + k + 1] as number) // down: insert from b
        : (v[offset + k - 1] as number) + 1; // right: delete from a
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return undefined;
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const prev = trace[d] as Int32Array; // V after round d-1, indexed from -d-1
    const at = (k: number): number => prev[k + d + 1] as number;
    const k = x - y;
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    for (; x > prevX && y > prevY; y--) ops.push({ kind: ' ', line: a[--x] as string });
    if (down) ops.push({ kind: '+', line: b[--y] as string });
    else ops.push({ kind: '-', line: a[--x] as string });
  }
  for (; x > 0 && y > 0; y--) ops.push({ kind: ' ', line: a[--x] as string });
  return ops.reverse();
}

/** `diff -u`-style text, or undefined when the files differ in too many lines for a line diff. */
export function unifiedDiff(a: string, b: string, opts: UnifiedDiffOptions): UnifiedDiff | undefined {
  const context = opts.context ?? 3;
  const maxLines = opts.maxLines ?? 2000;
  const la = splitLines(a);
  const lb = splitLines(b);
  let head = 0;
  while (head < la.length && head < lb.length && la[head] === lb[head]) head++;
  let tail = 0;
  while (tail < la.length - head && tail < lb.length - head && la[la.length - 1 - tail] === lb[lb.length - 1 - tail]) tail++;
  const middle = myers(la.slice(head, la.length - tail), lb.slice(head, lb.length - tail), opts.maxEdits ?? 2000);
  if (!middle) return undefined;
  const ops: Op[] = [
    ...la.slice(0, head).map((line): Op => ({ kind: ' ', line })),
    ...middle,
    ...la.slice(la.length - tail).map((line): Op => ({ kind: ' ', line })),
  ];
  const out = [`--- ${opts.labelA}`, `+++ ${opts.labelB}`];
  let truncated = false;
  // line numbers (1-based) in a and b at each op
  const posA: number[] = [];
  const posB: number[] = [];
  let ia = 1;
  let ib = 1;
  for (const op of ops) {
    posA.push(ia);
    posB.push(ib);
    if (op.kind !== '+') ia++;
    if (op.kind !== '-') ib++;
  }
  let i = 0;
  while (i < ops.length) {
    if (ops[i]?.kind === ' ') {
      i++;
      continue;
    }
    // a hunk: from `context` lines before this change to `context` lines after the last change
    // that is at most 2·context unchanged lines from the next
    const start = Math.max(0, i - context);
    let end = i;
    for (let j = i; j < ops.length; j++) {
      if (ops[j]?.kind !== ' ') end = j;
      else if (j - end > 2 * context) break;
    }
    const stop = Math.min(ops.length, end + context + 1);
    const slice = ops.slice(start, stop);
    const countA = slice.filter((o) => o.kind !== '+').length;
    const countB = slice.filter((o) => o.kind !== '-').length;
    const fromA = countA === 0 ? (posA[start] as number) - 1 : (posA[start] as number);
    const fromB = countB === 0 ? (posB[start] as number) - 1 : (posB[start] as number);
    out.push(`@@ -${fromA},${countA} +${fromB},${countB} @@`);
    for (const op of slice) {
      if (out.length >= maxLines) {
        truncated = true;
        break;
      }
      const noNewline = !op.line.endsWith('\n');
      out.push(op.kind + (noNewline ? op.line : op.line.slice(0, -1)));
      if (noNewline) out.push('\\ No newline at end of file');
    }
    if (truncated) break;
    i = stop;
  }
  if (truncated) out.push(`... (diff truncated after ${maxLines} lines)`);
  return { text: out.join('\n') + '\n', truncated };
}
