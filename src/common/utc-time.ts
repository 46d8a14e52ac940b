// RFC 3339 times in UTC ("2026-01-31T03:00:00Z"), as reschedule takes them. Date.parse alone is
// lenient: it rolls 2030-02-30 over into March and takes 24:00, so every field is checked
// against the date it gives back.

const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$/;

/** Milliseconds since the epoch, or undefined when the text is not a real UTC time. */
export function parseUtcTime(text: string): number | undefined {
  const m = RFC3339_UTC.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return undefined;
  const d = new Date(ms);
  const fields = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
  return fields.every((f, i) => f === Number(m[i + 1])) ? ms : undefined;
}
