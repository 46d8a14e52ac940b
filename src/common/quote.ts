// A value from outside (a command line, the network) as it may appear in a message: quoted,
// with control characters escaped so it cannot start a line of its own, and cut short so a
// megabyte value does not become a megabyte error.

/** how many characters of a value a message shows */
export const QUOTE_MAX = 80;

/** "value" with \n, \t, \u001b... escaped, truncated to `max` characters with how long it was. */
export function quote(value: string, max = QUOTE_MAX): string {
  const shown = value.length > max ? value.slice(0, max) : value;
  // JSON.stringify escapes quotes, backslashes and C0 controls; DEL, C1 controls and the Unicode
  // line separators are escaped here too, as terminals and log readers may act on them
  const escaped = JSON.stringify(shown).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return value.length > max ? `${escaped.slice(0, -1)}..." (${value.length} characters)` : escaped;
}

/**
 * A name as a message shows it: bare when it is plain (letters, digits, . _ + - : @ /, short),
 * as messages always showed names, else quoted and escaped as quote() does.
 */
export const shown = (value: string): string => (/^[A-Za-z0-9._+\-:@/]{1,80}$/.test(value) ? value : quote(value));
