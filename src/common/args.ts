// Command lines, through Node's util.parseArgs: positionals, `--flag value`, `--flag=value` and
// boolean flags. Unknown flags are usage errors that name the flag, so typos never pass silently.
// parseArgs words its errors for programmers (and differently between Node versions); they are
// reworded here into one short line that names the flag, keyed on the stable error codes.
import { parseArgs as nodeParseArgs } from 'node:util';
import { UsageError } from './errors.js';
import { quote } from './quote.js';

export interface FlagSpec {
  /** flags that take a value */
  values?: readonly string[];
  /** flags that take no value */
  booleans?: readonly string[];
  /** flags that take a value and may be given more than once (ParsedArgs.lists) */
  lists?: readonly string[];
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string>;
  booleans: Set<string>;
  /** every value of each `lists` flag, in order; absent when the flag was not given */
  lists?: Record<string, string[]>;
}

export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const name of spec.values ?? []) options[name] = { type: 'string' };
  for (const name of spec.booleans ?? []) options[name] = { type: 'boolean' };
  // -h is --help in every program, as users expect; no other short flags
  if (options.help) options.help = { type: 'boolean', short: 'h' };
  for (const name of spec.lists ?? []) options[name] = { type: 'string', multiple: true };
  let parsed;
  try {
    parsed = nodeParseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw usageErrorOf(err);
  }
  const values: Record<string, string> = {};
  const booleans = new Set<string>();
  const lists: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string') values[name] = value;
    else if (value === true) booleans.add(name);
    else if (Array.isArray(value)) lists[name] = value.filter((v): v is string => typeof v === 'string');
  }
  return { positionals: parsed.positionals, values, booleans, lists };
}

function usageErrorOf(err: unknown): unknown {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const flag = /'(-[^' ]+)/.exec(message)?.[1];
  if (flag === undefined) return code?.startsWith('ERR_PARSE_ARGS') ? new UsageError(message.split('\n')[0]!) : err;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option ${flag}`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return new UsageError(`${flag} takes no value`);
      if (/ambiguous/.test(message)) return new UsageError(`${flag} needs a value (write ${flag}=-VALUE for one starting with "-")`);
      return new UsageError(`${flag} needs a value`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new UsageError(`unexpected argument ${flag}`);
    default:
      return err;
  }
}

/**
 * A whole number written in decimal digits only. Number() would also take "0x10", "1e3", " 5",
 * "+5" and "" (as 0), none of which a user means as a count of seconds or bytes.
 */
export function parseDecimal(raw: string): number | undefined {
  if (!/^[0-9]+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : Infinity;
}

/** An integer flag in [min, max]; the usage error names the flag and the range. */
export function intFlag(args: ParsedArgs, name: string, fallback: number, min = 0, max?: number): number {
  const raw = args.values[name];
  if (raw === undefined) return fallback;
  const n = parseDecimal(raw);
  const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
  if (n === undefined || n < min || (max !== undefined && n > max) || n === Infinity) {
    throw new UsageError(`--${name} must be a decimal integer ${range}, got ${quote(raw)}`);
  }
  return n;
}
