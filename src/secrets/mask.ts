// Hides a job's secrets in what builder stores and shows (console, observe, uploads): each value
// and its base64 forms become "***". Console lines are raw bytes, so this works on Buffers.
//
// Base64 inside a longer base64 string (`printf 'user:%s' "$TOKEN" | base64`) depends on where
// the secret starts modulo 3: for each of the three alignments the characters computed only from
// the secret's own bits are the same whatever surrounds it, so those "cores" are masked too. At
// most two characters at each edge (four bits of the secret or fewer) stay visible.
//
// Values shorter than MIN_SECRET_BYTES are not masked: "***" in place of every "1" or "ab" would
// wreck ordinary output, and the pattern of masks would itself tell a reader the value. A
// secret that short is no secret; the caller should refuse or warn when storing it.

export const MASK = '***';
export const MIN_SECRET_BYTES = 4;

export interface Masker {
  /** `line` with every secret form replaced by ***; the same Buffer when nothing matched */
  mask(line: Buffer): Buffer;
  maskText(text: string): string;
  /** values given but too short to mask */
  readonly ignored: number;
  /** the byte patterns searched for, longest first (for tests and debugging; secret material) */
  readonly patternCount: number;
}

const toUrlSafe = (s: string): string => s.replace(/\+/g, '-').replace(/\//g, '_');

/** The base64 characters that depend only on `value`'s bits when it starts `k` bytes into a group. */
function alignedCore(value: Buffer, k: 0 | 1 | 2): string {
  const encoded = Buffer.concat([Buffer.alloc(k), value]).toString('base64');
  const first = Math.ceil((8 * k) / 6);
  const end = Math.floor((8 * (k + value.length)) / 6);
  return encoded.slice(first, end);
}

function formsOf(value: Buffer): Buffer[] {
  const std = value.toString('base64');
  const texts = [std, std.replace(/=+$/, ''), toUrlSafe(std.replace(/=+$/, ''))];
  for (const k of [0, 1, 2] as const) {
    const core = alignedCore(value, k);
    texts.push(core, toUrlSafe(core));
  }
  return [value, ...texts.map((t) => Buffer.from(t, 'latin1'))];
}

export function makeMasker(secrets: Iterable<string | Buffer>): Masker {
  let ignored = 0;
  const seen = new Set<string>();
  const patterns: Buffer[] = [];
  const add = (value: Buffer): void => {
    if (value.length < MIN_SECRET_BYTES) return;
    for (const form of formsOf(value)) {
      const key = form.toString('hex');
      if (form.length >= MIN_SECRET_BYTES && !seen.has(key)) {
        seen.add(key);
        patterns.push(form);
      }
    }
  };
  for (const s of secrets) {
    const value = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    if (value.length < MIN_SECRET_BYTES) {
      ignored++;
      continue;
    }
    add(value);
    // console lines never contain a newline: a multi-line secret (a PEM key, a file ending in
    // "\n") shows up one line at a time, so each of its lines is a secret of its own
    if (value.includes(0x0a)) {
      for (const part of value.toString('latin1').split('\n')) add(Buffer.from(part.replace(/\r$/, ''), 'latin1'));
    }
  }
  // longest first, so the padded form wins over its own prefix where both match
  patterns.sort((a, b) => b.length - a.length);

  const mask = (line: Buffer): Buffer => {
    if (patterns.length === 0 || line.length < MIN_SECRET_BYTES) return line;
    const spans: [number, number][] = [];
    for (const p of patterns) {
      for (let at = line.indexOf(p); at >= 0; at = line.indexOf(p, at + 1)) spans.push([at, at + p.length]);
    }
    if (spans.length === 0) return line;
    spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const parts: Buffer[] = [];
    let pos = 0;
    let open: [number, number] | undefined;
    // overlapping or touching matches become one ***: two stars side by side would show where
    // one secret ends, i.e. its length
    for (const s of spans) {
      if (open && s[0] <= open[1]) {
        open[1] = Math.max(open[1], s[1]);
        continue;
      }
      if (open) {
        parts.push(line.subarray(pos, open[0]), Buffer.from(MASK));
        pos = open[1];
      }
      open = [s[0], s[1]];
    }
    if (open) parts.push(line.subarray(pos, open[0]), Buffer.from(MASK), line.subarray(open[1]));
    return Buffer.concat(parts);
  };

  return {
    mask,
    maskText: (text: string): string => {
      const buf = Buffer.from(text, 'utf8');
      const out = mask(buf);
      return out === buf ? text : out.toString('utf8');
    },
    ignored,
    patternCount: patterns.length,
  };
}
