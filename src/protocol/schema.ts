// Small typed checkers for decoded CBOR values. A message's spec is written once, with these,
// and its TypeScript type is inferred from the spec (`type Job = Infer<typeof job>`), so the
// type and the runtime check cannot drift apart.
//
// Speed matters: every frame a server receives goes through a check. So the success path builds
// no strings: a mismatch is thrown as a bare Mismatch, each container it passes through adds its
// own step of the path (".lines", "[3]") on the way out, and check() turns it into one
// ProtocolError saying where, what was expected and what came.
import { BuilderError } from '../common/errors.js';
import { printable } from '../common/log.js';

export class ProtocolError extends BuilderError {
  constructor(message: string) {
    super('PROTOCOL', message);
    this.name = 'ProtocolError';
  }
}

/** Not an Error: no stack is captured for a value that is about to become a ProtocolError. */
class Mismatch {
  readonly path: string[] = [];
  constructor(readonly detail: string) {}
}

/** Checks an unknown value into a T, or throws a Mismatch. */
export type Schema<T> = (v: unknown) => T;
export type Infer<S> = S extends Schema<infer T> ? T : S extends Optional<infer T> ? T : never;

const describe = (v: unknown): string =>
  v === null ? 'null' : Buffer.isBuffer(v) || v instanceof Uint8Array ? 'bytes' : Array.isArray(v) ? 'array' : typeof v;
const mismatch = (expected: string, v: unknown): Mismatch => new Mismatch(`expected ${expected}, got ${describe(v)}`);

/** Runs a schema; a mismatch becomes a ProtocolError whose message starts with `where`. */
export function check<T>(schema: Schema<T>, value: unknown, where: string): T {
  try {
    return schema(value);
  } catch (err) {
    if (err instanceof Mismatch) throw new ProtocolError(`${where}${err.path.join('')}: ${err.detail}`);
    throw err;
  }
}

/** Throws the mismatch a hand-written dispatcher found (for messages the schemas cannot word). */
export function fail(expected: string, v: unknown): never {
  throw mismatch(expected, v);
}

export const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Uint8Array);

export const str: Schema<string> = (v) => {
  if (typeof v === 'string') return v;
  throw mismatch('a string', v);
};
export const int: Schema<number> = (v) => {
  if (Number.isSafeInteger(v)) return v as number;
  throw mismatch('an integer', v);
};
export const bool: Schema<boolean> = (v) => {
  if (typeof v === 'boolean') return v;
  throw mismatch('a boolean', v);
};
/** CBOR byte strings; cbor-x may hand out a Uint8Array, which becomes a Buffer over the same bytes. */
export const bytes: Schema<Buffer> = (v) => {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.length);
  throw mismatch('bytes', v);
};
/** Anything at all: only for payloads whose type is a contract elsewhere (a reply's data). */
export const unknown: Schema<unknown> = (v) => v;

/** Exactly this string or boolean (the tag of a message, a result kind). */
export function literal<const L extends string | boolean>(value: L): Schema<L> {
  const expected = typeof value === 'string' ? `"${value}"` : String(value);
  return (v) => {
    if (v === value) return value;
    throw mismatch(expected, v);
  };
}

/** One of a few strings. */
export function oneOf<const L extends string>(values: readonly L[]): Schema<L> {
  const set = new Set<unknown>(values);
  const expected = `one of ${values.join('|')}`;
  return (v) => {
    if (set.has(v)) return v as L;
    throw mismatch(expected, v);
  };
}

export function arrayOf<T>(item: Schema<T>): Schema<T[]> {
  return (v) => {
    if (!Array.isArray(v)) throw mismatch('an array', v);
    const out = new Array<T>(v.length);
    let i = 0;
    try {
      for (; i < v.length; i++) out[i] = item(v[i]);
    } catch (err) {
      if (err instanceof Mismatch) err.path.unshift(`[${i}]`);
      throw err;
    }
    return out;
  };
}

export function tuple<const S extends readonly Schema<unknown>[]>(...items: S): Schema<{ -readonly [K in keyof S]: Infer<S[K]> }> {
  const n = items.length;
  return (v) => {
    if (!Array.isArray(v) || v.length !== n) throw mismatch(`an array of ${n}`, v);
    const out = new Array<unknown>(n);
    let i = 0;
    try {
      for (; i < n; i++) out[i] = items[i]!(v[i]);
    } catch (err) {
      if (err instanceof Mismatch) err.path.unshift(`[${i}]`);
      throw err;
    }
    return out as { -readonly [K in keyof S]: Infer<S[K]> };
  };
}

/** A map from strings to values of one type (a job's extra environment variables). */
export function mapOf<T>(value: Schema<T>): Schema<Record<string, T>> {
  return (v) => {
    if (!isMap(v)) throw mismatch('a map', v);
    const out: Record<string, T> = {};
    for (const [k, item] of Object.entries(v)) {
      try {
        // defined, not assigned: a key "__proto__" from the wire stays a plain key
        Object.defineProperty(out, k, { value: value(item), enumerable: true, writable: true, configurable: true });
      } catch (err) {
        // the key comes from the network: escaped and cut before it can reach a log line
        if (err instanceof Mismatch) err.path.unshift(`.${printable(k, 64)}`);
        throw err;
      }
    }
    return out;
  };
}

/** Marks a record field as optional: absent or null on the wire, left out of the checked value. */
export class Optional<T> {
  constructor(readonly schema: Schema<T>) {}
}
export const opt = <T>(schema: Schema<T>): Optional<T> => new Optional(schema);

export type Fields = Record<string, Schema<unknown> | Optional<unknown>>;
type RequiredKeys<F> = { [K in keyof F]: F[K] extends Optional<unknown> ? never : K }[keyof F];
type OptionalKeys<F> = { [K in keyof F]: F[K] extends Optional<unknown> ? K : never }[keyof F];
type Flat<T> = { [K in keyof T]: T[K] } & {};
/** The value a record of these fields checks into; optional fields are `k?: T` (never `T | undefined`). */
export type RecordOf<F extends Fields> = Flat<{ [K in RequiredKeys<F>]: Infer<F[K]> } & { [K in OptionalKeys<F>]?: Infer<F[K]> }>;

/** A CBOR map with these fields; other keys are dropped, so nothing unchecked gets through. */
export function record<const F extends Fields>(fields: F): Schema<RecordOf<F>> & { fields: F } {
  // the field table is flattened once here, not per value
  const keys = Object.keys(fields);
  const checks = keys.map((k) => { const f = fields[k]!; return f instanceof Optional ? f.schema : f; });
  const optional = keys.map((k) => fields[k] instanceof Optional);
  const n = keys.length;
  const schema = (v: unknown): RecordOf<F> => {
    if (!isMap(v)) throw mismatch('a map', v);
    const out: Record<string, unknown> = {};
    let i = 0;
    try {
      for (; i < n; i++) {
        const value = v[keys[i]!];
        if (value === undefined || value === null) {
          if (optional[i]) continue;
          break;
        }
        out[keys[i]!] = checks[i]!(value);
      }
    } catch (err) {
      if (err instanceof Mismatch) err.path.unshift(`.${keys[i]}`);
      throw err;
    }
    // a missing field is reported at the map itself, a wrong one at the field
    if (i < n) throw new Mismatch(`field "${keys[i]}" is missing`);
    return out as RecordOf<F>;
  };
  return Object.assign(schema, { fields });
}

/**
 * One of several records told apart by the value of `tag` (a string, or a boolean such as a
 * response's `ok`). The expected text lists the tags, e.g. "expected exited|signalled|...".
 */
export function tagged<K extends string, const C extends Record<string, Schema<Record<K, unknown>>>>(
  tag: K, cases: C,
): Schema<Infer<C[keyof C]>> {
  const table = new Map<unknown, Schema<unknown>>();
  for (const [name, schema] of Object.entries(cases)) table.set(name === 'true' ? true : name === 'false' ? false : name, schema);
  const expected = Object.keys(cases).join('|');
  return (v) => {
    if (!isMap(v)) throw mismatch('a map', v);
    const value = v[tag];
    if (value === undefined || value === null) throw new Mismatch(`field "${tag}" is missing`);
    const schema = table.get(value);
    if (schema === undefined) {
      const m = mismatch(expected, value);
      m.path.push(`.${tag}`);
      throw m;
    }
    return schema(v) as Infer<C[keyof C]>;
  };
}
