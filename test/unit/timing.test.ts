import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { advance, checkTiming, nextAfter } from '../../src/server/timing.js';

const t = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

test('periods: a new job runs again one period later; never only by execute', () => {
  assert.is(iso(nextAfter({ period: 'hourly' }, t('2026-01-01T10:00:00Z'))), '2026-01-01T11:00:00.000Z');
  assert.is(iso(nextAfter({}, t('2026-01-01T10:00:00Z'))), '2026-01-02T10:00:00.000Z');
  assert.is(nextAfter({ period: 'never' }, t('2026-01-01T10:00:00Z')), null);
});

test('after downtime a job runs once and keeps its phase, not once per missed slot', () => {
  // due at 10:00, server was down until 15:30: next is 16:00, not 11:00
  assert.is(iso(advance({ period: 'hourly' }, t('2026-01-01T10:00:00Z'), t('2026-01-01T15:30:00Z'))), '2026-01-01T16:00:00.000Z');
  assert.is(iso(advance({ cron: '0 3 * * *' }, t('2026-01-01T03:00:00Z'), t('2026-01-05T12:00:00Z'))), '2026-01-06T03:00:00.000Z');
});

test('cron in a time zone, across a daylight-saving change', () => {
  // 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer
  assert.is(iso(nextAfter({ cron: '0 3 * * *', tz: 'Europe/Berlin' }, t('2026-03-28T12:00:00Z'))), '2026-03-29T01:00:00.000Z');
  assert.is(iso(nextAfter({ cron: '0 3 * * 1', tz: 'Europe/Berlin' }, t('2026-11-23T12:00:00Z'))), '2026-11-30T02:00:00.000Z');
});

test('a local time that happens twice when clocks go back runs once, at its first occurrence', () => {
  // New York, 1 November 2026: 01:15 EDT (05:15 UTC), then 01:15 EST (06:15 UTC)
  const job = { cron: '15 1 * * *', tz: 'America/New_York' };
  assert.is(iso(nextAfter(job, t('2026-11-01T00:00:00Z'))), '2026-11-01T05:15:00.000Z');
  assert.is(iso(nextAfter(job, t('2026-11-01T05:15:00Z'))), '2026-11-02T06:15:00.000Z');
  // Lord Howe goes back by half an hour on 5 April: 01:45 is at 14:45 and 15:15 UTC; the next
  // day's 01:45 (+10:30) is at 15:15 UTC
  const howe = { cron: '45 1 * * *', tz: 'Australia/Lord_Howe' };
  assert.is(iso(nextAfter(howe, t('2026-04-04T14:00:00Z'))), '2026-04-04T14:45:00.000Z');
  assert.is(iso(nextAfter(howe, t('2026-04-04T14:45:00Z'))), '2026-04-05T15:15:00.000Z');
});

test('a yearly cron expression is found quickly, in any time zone', () => {
  const started = performance.now();
  assert.is(iso(nextAfter({ cron: '0 0 1 1 *', tz: 'Asia/Kathmandu' }, t('2026-01-01T00:00:00Z'))), '2026-12-31T18:15:00.000Z');
  assert.is(iso(nextAfter({ cron: '0 12 29 2 *' }, t('2026-03-01T00:00:00Z'))), '2028-02-29T12:00:00.000Z');
  assert.ok(performance.now() - started < 500, 'no minute-by-minute walk through years');
});

test('bad timings are refused with the reason', () => {
  assert.throws(() => checkTiming({ cron: '61 * * * *' }), /invalid cron expression "61 \* \* \* \*"/);
  assert.throws(() => checkTiming({ cron: '0 3 * *' }), /invalid cron expression/);
  assert.throws(() => checkTiming({ cron: '0 3 * * *', tz: 'Mars/Olympus' }), /unknown time zone "Mars\/Olympus"/);
  assert.throws(() => checkTiming({ cron: '0 3 * * *', period: 'daily' }), /either --period or --cron/);
});

test.run();
