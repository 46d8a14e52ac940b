// The web view in a real browser (Debian's chromium, driven by puppeteer-core) against a real
// server, worker and runs: the front page lists a scheduled job; a run page shows its console
// and artifacts and a download gives the exact bytes; a page opened mid-build shows new lines
// live and then the result, without a reload; markup in a console stays text and runs nothing;
// a wrong password gets 401. Screenshots of the three main pages go to test-output/screenshots/.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { need } from '../helpers/env.js';
import { Harness, eventually, repoRoot, withTimeout, type ServerHandle } from '../helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = join(repoRoot, 'test-output', 'screenshots');
const XSS = '<script>alert(1)</script>';

const haveChromium = (): boolean => need('chromium', existsSync(CHROMIUM), 'apt-get install chromium (Debian package), as .ci/run does');

function launch(h: Harness): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${h.path('chromium-profile')}`],
  });
}

async function webServer(h: Harness, args: string[] = []): Promise<{ server: ServerHandle; web: string }> {
  mkdirSync(h.path('etc'), { recursive: true });
  const server = await h.server({ args: ['--http', '127.0.0.1:0', ...args] });
  const m = await server.proc.waitFor(/web view listening address=127\.0\.0\.1:(\d+)/);
  return { server, web: `http://127.0.0.1:${m[1]}` };
}

/** Counts every dialog (alert, confirm) a page opens: markup that ran would open one. */
function countDialogs(page: Page): { n: number } {
  const seen = { n: 0 };
  page.on('dialog', (d) => {
    seen.n++;
    void d.dismiss();
  });
  return seen;
}

const consoleTexts = (page: Page): Promise<string[]> =>
  page.$$eval('#console td.l', (cells) => cells.map((c) => c.textContent ?? ''));

test('front page, job page and run page: the scheduled job, the console, the artifacts and their exact bytes', withTimeout(90_000, async () => {
  if (!haveChromium()) return;
  const h = new Harness();
  let browser: Browser | undefined;
  try {
    const { server, web } = await webServer(h);
    const blob = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 256));
    writeFileSync(h.path('blob.bin'), blob);
    h.worker(server, 'debian-12');
    const script = h.script('hello', `echo hello from the build\necho '${XSS}'\nmkdir -p out\ncp ${h.path('blob.bin')} out/blob.bin\necho done\n`);
    assert.is((await h.client(server, ['schedule', 'hello', 'debian-12', script])).code, 0);
    // a job on a platform without a worker stays scheduled and queued
    assert.is((await h.client(server, ['schedule', 'waiting', 'freebsd-14', script, '--cron', '0 3 * * *'])).code, 0);
    const [run] = await eventually(async () => {
      const runs = await h.history(server, 'hello');
      return runs.length === 1 ? runs : undefined;
    }, 30_000, 'the run of hello');

    browser = await launch(h);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const dialogs = countDialogs(page);
    mkdirSync(SCREENSHOTS, { recursive: true });

    const front = await page.goto(`${web}/`);
    assert.is(front?.status(), 200);
    const jobs = await page.$$eval('table.schedule td.job a', (as) => as.map((a) => a.textContent));
    assert.equal(jobs, ['hello', 'waiting']);
    const waitingRow = await page.$eval('table.schedule tbody tr:nth-child(2)', (tr) => tr.textContent ?? '');
    assert.match(waitingRow, /0 3 \* \* \*/);
    assert.match(waitingRow, /never ran/);
    await page.screenshot({ path: join(SCREENSHOTS, 'front.png'), fullPage: true });

    await page.click('a[href="/job/hello"]');
    await page.waitForSelector('table.runs');
    assert.match(await page.$eval('table.runs tbody', (t) => t.textContent ?? ''), /exited 0/);
    await page.screenshot({ path: join(SCREENSHOTS, 'job.png'), fullPage: true });

    await page.goto(`${web}/run/${run.uuid}`);
    assert.equal(await consoleTexts(page), ['hello from the build', XSS, 'done']);
    assert.is(await page.$$eval('#console script', (s) => s.length), 0);
    assert.is(await page.$eval('#result', (e) => e.textContent?.trim()), 'exited 0');
    const artifact = await page.$eval('table.artifacts tbody tr', (tr) => ({
      path: tr.querySelector('a')!.textContent, href: tr.querySelector('a')!.getAttribute('href'), sha: tr.querySelector('code.sha')!.textContent,
    }));
    const sha = createHash('sha256').update(blob).digest('hex');
    assert.equal(artifact, { path: 'out/blob.bin', href: `/run/${run.uuid}/artifact/out/blob.bin`, sha });
    await page.screenshot({ path: join(SCREENSHOTS, 'run.png'), fullPage: true });

    // the download, from the page: exact bytes, length and a file name
    const got = await page.evaluate(async (href: string) => {
      const r = await fetch(href);
      const bytes = new Uint8Array(await r.arrayBuffer());
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      return {
        status: r.status, length: r.headers.get('content-length'), disposition: r.headers.get('content-disposition'),
        size: bytes.length, sha: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''),
      };
    }, artifact.href!);
    assert.equal(got, { status: 200, length: String(blob.length), disposition: `attachment; filename="blob.bin"; filename*=UTF-8''blob.bin`, size: blob.length, sha });
    assert.is(dialogs.n, 0, 'no markup ran');
  } finally {
    await browser?.close();
    await h.cleanup();
  }
}));

test('a page opened mid-build shows what was printed, then new lines as they come, then the result without a reload', withTimeout(90_000, async () => {
  if (!haveChromium()) return;
  const h = new Harness();
  let browser: Browser | undefined;
  try {
    const { server, web } = await webServer(h);
    h.worker(server, 'debian-12');
    const go = h.path('go');
    const end = h.path('end');
    // each later line carries the time it was printed (ms since the epoch), to measure the delay
    const script = h.script('slow', [
      'echo before the page',
      `while [ ! -e ${go} ]; do sleep 0.01; done`,
      `echo '${XSS}'`,
      'for i in 1 2 3 4 5 6; do echo "live $i $(date +%s%3N)"; sleep 0.2; done',
      `while [ ! -e ${end} ]; do sleep 0.01; done`,
      'exit 3',
    ].join('\n'));
    assert.is((await h.client(server, ['schedule', 'slow', 'debian-12', script])).code, 0);
    const uuid = await eventually(async () => (await h.info(server)).running[0]?.uuid as string | undefined, 20_000, 'the run to start');
    await eventually(async () => (await (await fetch(`${web}/api/run/${uuid}`)).json() as { console: { total: number } }).console.total >= 1,
      10_000, 'the first line');

    browser = await launch(h);
    const page = await browser.newPage();
    const dialogs = countDialogs(page);
    await page.goto(`${web}/run/${uuid}`);
    assert.equal(await consoleTexts(page), ['before the page']);
    assert.is(await page.$eval('#result', (e) => e.textContent?.trim()), 'running');
    // when each row appears, by the page's clock (the same machine's as the job's)
    await page.evaluate(() => {
      const w = window as unknown as { seenAt: Record<string, number>; notReloaded: boolean };
      w.seenAt = {};
      w.notReloaded = true;
      new MutationObserver(() => {
        for (const td of document.querySelectorAll('#console td.l')) w.seenAt[td.textContent ?? ''] ??= Date.now();
      }).observe(document.querySelector('#console tbody')!, { childList: true });
    });
    writeFileSync(go, '');
    await page.waitForFunction(() => document.querySelectorAll('#console td.l').length >= 8, { timeout: 20_000 });
    const texts = await consoleTexts(page);
    assert.equal(texts.slice(0, 2), ['before the page', XSS]);
    assert.is(await page.$$eval('#console script', (s) => s.length), 0);
    const seenAt = await page.evaluate(() => (window as unknown as { seenAt: Record<string, number> }).seenAt);
    const delays = texts.slice(2).map((t) => {
      const printed = Number(/^live \d (\d+)$/.exec(t)![1]);
      return seenAt[t]! - printed;
    });
    delays.sort((a, b) => a - b);
    console.log(`  printed line to browser: ${delays.join(', ')} ms`);
    const median = delays[Math.floor(delays.length / 2)]!;
    assert.ok(median < 100, `median delay ${median} ms`);
    assert.ok(delays.at(-1)! < 1000, `slowest delay ${delays.at(-1)} ms`);

    writeFileSync(end, '');
    await page.waitForFunction(() => document.body.dataset.ended === '1', { timeout: 20_000 });
    assert.is(await page.$eval('#result', (e) => e.textContent?.trim()), 'exited 3');
    assert.ok(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), 'the page was not reloaded');
    assert.is(dialogs.n, 0, 'no markup ran');
  } finally {
    await browser?.close();
    await h.cleanup();
  }
}));

test('with --http-auth every page needs the password; a wrong one gets 401', withTimeout(60_000, async () => {
  if (!haveChromium()) return;
  const h = new Harness();
  let browser: Browser | undefined;
  try {
    writeFileSync(h.path('web-password'), 'correct horse\n', { mode: 0o600 });
    const { web } = await webServer(h, ['--http-auth', `ops:${h.path('web-password')}`]);
    for (const path of ['/', '/api/', '/metrics', '/healthz', '/job/x', '/static/style.css']) {
      const r = await fetch(`${web}${path}`);
      assert.is(r.status, 401, path);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="builder"/);
    }
    const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
    assert.is((await fetch(`${web}/`, { headers: basic('ops', 'wrong') })).status, 401);
    assert.is((await fetch(`${web}/`, { headers: basic('someone', 'correct horse') })).status, 401);
    assert.is((await fetch(`${web}/`, { headers: basic('ops', 'correct horse') })).status, 200);

    browser = await launch(h);
    const page = await browser.newPage();
    await page.authenticate({ username: 'ops', password: 'wrong' });
    assert.is((await page.goto(`${web}/`))?.status(), 401);
    const page2 = await browser.newPage();
    await page2.authenticate({ username: 'ops', password: 'correct horse' });
    assert.is((await page2.goto(`${web}/`))?.status(), 200);
    assert.match(await page2.$eval('h1', (e) => e.textContent ?? ''), /Schedule/);
  } finally {
    await browser?.close();
    await h.cleanup();
  }
}));

test.run();
