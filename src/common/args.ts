// Command lines, through Node's util.parseArgs: positionals, `--flag value`, `--flag=value` and
// boolean flags. Unknown flags are usage errors that name the flag, so typos never pass silently.
// parseArgs words its errors for programmers (and differently between Node versions); they are
// reworded here into one short line that names the flag, keyed on the stable error codes.
import { parseArgs as nodeParseArgs } from 'node:util';
import { UsageError } from './errors.js';

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
 * An integer flag, written in decimal digits: Number() alone would take "1e15", "0x10" and " "
 * (as 0), none of which a user means as a count.
 */
export function intFlag(args: ParsedArgs, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = args.values[name];
  if (raw === undefined) return fallback;
  const n = /^-?\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} must be an integer ${range}, got "${raw}"`);
  }
  return n;
}
