// Headless-Chromium test of the `zoo serve` chat page (crates/zoo-serve/assets/chat.html).
//
// Usage:
//   DEST=$(scripts/playwright.sh "$HOME/.cache/zoo-playwright" | tail -n1)
//   PLAYWRIGHT_DIR="$DEST" node tests/web/chat_page.mjs http://127.0.0.1:8123
//
// BASE_URL must serve the page at `/` and the OpenAI API (GET /v1/models, streaming
// POST /v1/chat/completions) on the same origin, with at least one real model behind it.
//
// Loading playwright-core: ES modules ignore NODE_PATH, so this script resolves the package itself,
// first from $PLAYWRIGHT_DIR (the DEST folder of scripts/playwright.sh: DEST/node_modules/playwright-core),
// then from each NODE_PATH entry (a node_modules folder), then by a plain `import('playwright-core')`.
//
// The browser is the system Chromium: $CHROMIUM, else /usr/bin/chromium, with a fresh temporary
// profile that is removed at the end. Nothing is downloaded.
//
// Checks: the page loads with no request leaving the origin; the model list fills; a message streams
// (>= 2 distinct non-empty texts seen while data-state=streaming) and ends with data-state=done; the
// request carries the parameters; a long answer is stopped with #stop (data-state=stopped, the text
// no longer changes, #status says ready) and Enter sends again afterwards; an OpenAI-style error
// body (injected with page.route) is shown in the conversation; a reload restores the conversation.
//
// Output: one JSON line on stdout ({"ok":true,...}, or {"ok":false,"error":...}). Exit 0 on success;
// 1 otherwise, with "FAIL: <reason>" on stderr; 2 for bad usage.
// The whole run is capped at 85 s.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOTAL_MS = 85_000;
const t0 = Date.now();
const require = createRequire(import.meta.url);

async function loadPlaywright() {
  const candidates = [];
  if (process.env.PLAYWRIGHT_DIR) candidates.push(path.join(process.env.PLAYWRIGHT_DIR, 'node_modules', 'playwright-core'));
  for (const p of (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)) candidates.push(path.join(p, 'playwright-core'));
  for (const c of candidates) {
    if (fs.existsSync(path.join(c, 'package.json'))) return require(path.resolve(c));
  }
  try {
    return await import('playwright-core');
  } catch (e) {
    throw new Error(
      'playwright-core not found: run `scripts/playwright.sh DEST` and set PLAYWRIGHT_DIR=DEST ' +
        `(looked in: ${candidates.join(', ') || 'nothing; PLAYWRIGHT_DIR and NODE_PATH unset'}; import: ${e.message})`,
    );
  }
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The last assistant message, as {state, text, meta} (null when none).
const lastAssistant = (page) =>
  page.evaluate(() => {
    const all = document.querySelectorAll('#messages > .msg.assistant');
    const a = all[all.length - 1];
    if (!a) return null;
    const text = a.querySelector('.text');
    const meta = a.querySelector('.meta');
    return { state: a.dataset.state, text: text ? text.textContent : a.textContent, meta: meta ? meta.textContent : '', count: all.length };
  });

// Everything in #messages, for the reload comparison.
const snapshot = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('#messages > .msg')].map((m) => ({
      cls: m.className,
      state: m.dataset.state || null,
      text: (m.querySelector('.text') || m).textContent,
    })),
  );

// Records, inside the page, every distinct non-empty text of assistant message number `n` (1-based)
// while it has data-state=streaming; MutationObserver sees each DOM update, not just polled samples.
const startRecorder = (page, n) =>
  page.evaluate((n) => {
    if (window.__zooObs) window.__zooObs.disconnect();
    const rec = (window.__zooRec = { states: [], statuses: new Set(), stopShown: false, sendDisabled: false });
    const look = () => {
      const a = document.querySelectorAll('#messages > .msg.assistant')[n - 1];
      rec.statuses.add(document.getElementById('status').textContent);
      if (!a || a.dataset.state !== 'streaming') return;
      const stop = document.getElementById('stop');
      if (stop.getClientRects().length > 0 && !stop.disabled) rec.stopShown = true;
      if (document.getElementById('send').disabled) rec.sendDisabled = true;
      const t = (a.querySelector('.text') || a).textContent;
      if (t && rec.states[rec.states.length - 1] !== t) rec.states.push(t);
    };
    window.__zooObs = new MutationObserver(look);
    window.__zooObs.observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true, attributes: true });
    window.__zooObs.observe(document.getElementById('status'), { subtree: true, childList: true, characterData: true });
  }, n);
const readRecorder = (page) =>
  page.evaluate(() => ({ ...window.__zooRec, statuses: [...window.__zooRec.statuses] }));

// Waits until assistant message number `n` leaves data-state=streaming; returns its final state.
async function waitSettled(page, n, timeout) {
  await page.waitForFunction(
    (n) => {
      const a = document.querySelectorAll('#messages > .msg.assistant')[n - 1];
      return a && a.dataset.state && a.dataset.state !== 'streaming';
    },
    n,
    { timeout, polling: 50 },
  );
  return lastAssistant(page);
}

const summary = { ok: false };

async function main() {
  const base = (process.argv[2] || '').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(base)) {
    console.error('usage: node tests/web/chat_page.mjs BASE_URL   (e.g. http://127.0.0.1:8123)');
    process.exit(2);
  }
  const origin = new URL(base).origin;
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  check(fs.existsSync(executablePath), `Chromium not found at ${executablePath} (set CHROMIUM)`);

  const { chromium } = await loadPlaywright();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'zoo-chat-page-'));
  let context;
  const cleanup = async () => {
    if (context) await Promise.race([context.close().catch(() => {}), sleep(5000)]);
    context = null;
    fs.rmSync(profile, { recursive: true, force: true });
  };
  const timer = setTimeout(async () => {
    summary.error = `the test ran past ${TOTAL_MS / 1000} s`;
    console.log(JSON.stringify(summary));
    console.error('FAIL: ' + summary.error);
    await cleanup();
    process.exit(1);
  }, TOTAL_MS);

  summary.base = base;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15_000);

    const pageErrors = [];
    const external = [];
    const bodies = [];
    page.on('pageerror', (e) => pageErrors.push(String(e && e.message ? e.message : e)));
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:') && u !== 'about:blank') external.push(u);
      if (r.method() === 'POST' && new URL(u).pathname.endsWith('/v1/chat/completions')) {
        try { bodies.push(r.postDataJSON()); } catch { bodies.push(null); }
      }
    });

    // 1. The page loads.
    const resp = await page.goto(base + '/', { waitUntil: 'load', timeout: 20_000 });
    check(resp && resp.ok(), `GET ${base}/ answered ${resp ? resp.status() : 'nothing'}`);
    const ctype = resp.headers()['content-type'] || '';
    check(/text\/html/i.test(ctype), `GET / has Content-Type "${ctype}", expected text/html`);
    check((await page.title()) === 'zoo chat', `page title is "${await page.title()}", expected "zoo chat"`);
    for (const id of ['model', 'input', 'send', 'stop', 'new-chat', 'messages', 'temperature', 'top-p', 'max-tokens', 'seed', 'system', 'api-key', 'status']) {
      check((await page.locator('#' + id).count()) === 1, `element #${id} is missing`);
    }

    // 2. The model list fills from GET /v1/models.
    await page
      .waitForFunction(() => [...document.querySelectorAll('#model option')].some((o) => o.value), null, { timeout: 15_000, polling: 100 })
      .catch(async () => {
        throw new Failure(`#model got no model from /v1/models (status line: "${await page.locator('#status').textContent()}")`);
      });
    const models = await page.$$eval('#model option', (os) => os.map((o) => o.value).filter(Boolean));
    const model = await page.inputValue('#model');
    summary.models = models.length;
    summary.model = model;

    await page.click('#new-chat');
    check((await page.locator('#messages > .msg').count()) === 0, '#new-chat left messages behind');
    // The parameters panel is a drawer at narrow widths.
    if (!(await page.locator('#max-tokens').isVisible())) await page.click('#toggle-settings');

    // 3. A streamed answer.
    await page.fill('#max-tokens', '48');
    await page.fill('#seed', '7');
    await startRecorder(page, 1);
    const prompt1 = 'Write three sentences about a zoo.';
    await page.fill('#input', prompt1);
    await page.click('#send');
    const user1 = await page.locator('#messages > .msg.user').last().locator('.text').textContent();
    check(user1 === prompt1, `the user message shows "${user1}", expected "${prompt1}"`);
    const a1 = await waitSettled(page, 1, 45_000);
    const rec1 = await readRecorder(page);
    check(a1.state === 'done', `first answer ended in data-state=${a1.state}: ${a1.text}`);
    check(a1.text.trim().length > 0, 'first answer is empty');
    check(rec1.states.length >= 2, `first answer did not stream: ${rec1.states.length} distinct text(s) seen while streaming`);
    check(rec1.statuses.some((s) => /streaming/i.test(s)), `#status never said streaming (saw ${JSON.stringify(rec1.statuses)})`);
    check(rec1.stopShown, '#stop was not visible and enabled while streaming');
    check(rec1.sendDisabled, '#send stayed enabled while streaming');
    check((await page.locator('#status').textContent()) === 'ready', `#status is "${await page.locator('#status').textContent()}" after the answer`);
    const b1 = bodies[0];
    check(b1 && b1.stream === true, 'the request did not ask for stream: true');
    check(b1.stream_options && b1.stream_options.include_usage === true, 'the request did not ask for stream_options.include_usage');
    check(b1.max_tokens === 48 && b1.seed === 7, `the request carries max_tokens=${b1.max_tokens} seed=${b1.seed}, expected 48 and 7`);
    check(b1.model === model, `the request names model ${b1.model}, expected ${model}`);
    check(Array.isArray(b1.messages) && b1.messages.at(-1).role === 'user' && b1.messages.at(-1).content === prompt1, 'the request does not end with the user message');
    summary.stream = { distinct_states: rec1.states.length, chars: a1.text.length, meta: a1.meta };

    // 4. Stop a long answer.
    await page.fill('#max-tokens', '400');
    await page.fill('#seed', '');
    await startRecorder(page, 2);
    await page.fill('#input', 'Tell me a long story about a lion who learns to read. Make it very long and detailed.');
    await page.click('#send');
    await page.waitForFunction(
      () => {
        const all = document.querySelectorAll('#messages > .msg.assistant');
        const a = all[1];
        return a && (a.dataset.state !== 'streaming' || a.querySelector('.text').textContent.length > 0);
      },
      null,
      { timeout: 30_000, polling: 20 },
    );
    const before = await lastAssistant(page);
    check(before.state === 'streaming', `the long answer ended (data-state=${before.state}) before #stop could be clicked: ${before.text.slice(0, 200)}`);
    await page.click('#stop', { timeout: 5_000 });
    const a2 = await waitSettled(page, 2, 5_000);
    check(a2.state === 'stopped', `after #stop the answer has data-state=${a2.state}`);
    check(a2.text.length > 0, 'the stopped answer lost its partial text');
    await sleep(1000);
    const a2later = await lastAssistant(page);
    check(a2later.text === a2.text && a2later.state === 'stopped', 'the stopped answer kept changing after #stop');
    const status2 = await page.locator('#status').textContent();
    check(status2 === 'ready', `#status is "${status2}" after #stop, expected "ready"`);
    check(await page.locator('#send').isEnabled(), '#send is still disabled after #stop');
    check(!(await page.locator('#stop').isVisible()), '#stop is still visible after #stop');
    const b2 = bodies[1];
    check(b2 && b2.max_tokens === 400 && !('seed' in b2), `the second request has max_tokens=${b2 && b2.max_tokens}, seed=${b2 && b2.seed}; expected 400 and no seed`);
    summary.stop = { chars: a2.text.length, streamed_before_stop: before.text.length };

    // 5. Sending works again (with Enter this time), and the history includes the stopped answer.
    await page.fill('#max-tokens', '16');
    await startRecorder(page, 3);
    await page.fill('#input', 'Say hello.');
    await page.press('#input', 'Enter');
    const a3 = await waitSettled(page, 3, 30_000);
    check(a3.state === 'done' && a3.text.trim().length > 0, `the answer after a stop ended in data-state=${a3.state}: "${a3.text}"`);
    const b3 = bodies[2];
    check(b3 && b3.messages.length === 5, `the third request sends ${b3 && b3.messages.length} messages, expected 5 (3 user, 2 assistant)`);
    check(b3.messages[3].role === 'assistant' && b3.messages[3].content === a2.text, 'the third request does not carry the stopped partial answer');
    check((await page.inputValue('#input')) === '', 'Enter did not clear the input');
    summary.after_stop = { chars: a3.text.length, meta: a3.meta };

    // 6. An OpenAI-style error body is shown in the conversation.
    const errMsg = 'zoo test: the model is resting';
    await page.route('**/v1/chat/completions', (route) =>
      route.fulfill({
        status: 400,
        contentType: 'application/json',
        body: JSON.stringify({ error: { message: errMsg, type: 'invalid_request_error', code: 'zoo_test' } }),
      }),
    );
    await page.fill('#input', 'This one fails.');
    await page.click('#send');
    const a4 = await waitSettled(page, 4, 10_000);
    await page.unroute('**/v1/chat/completions');
    check(a4.state === 'error' && a4.text.includes(errMsg), `an error body showed as data-state=${a4.state}: "${a4.text}"`);
    const status4 = await page.locator('#status').textContent();
    check(status4.includes(errMsg), `#status is "${status4}" after an error, expected the error message`);
    check(await page.locator('#send').isEnabled(), '#send is disabled after an error');

    // 7. Reload: the conversation comes back from localStorage.
    const snap = await snapshot(page);
    check(snap.length === 8, `expected 8 messages before reload, found ${snap.length}`);
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction((n) => document.querySelectorAll('#messages > .msg').length >= n, snap.length, { timeout: 10_000 });
    const snap2 = await snapshot(page);
    check(JSON.stringify(snap2) === JSON.stringify(snap), `the conversation after reload differs:\nbefore ${JSON.stringify(snap)}\nafter  ${JSON.stringify(snap2)}`);
    check((await page.inputValue('#max-tokens')) === '16', 'the parameters were not restored after reload');
    summary.restored = snap2.length;

    // New chat clears it, also across a reload.
    await page.click('#new-chat');
    check((await page.locator('#messages > .msg').count()) === 0, '#new-chat did not clear the conversation');
    await page.reload({ waitUntil: 'load' });
    check((await page.locator('#messages > .msg').count()) === 0, 'a cleared conversation came back after reload');

    check(external.length === 0, `the page requested other origins: ${external.join(', ')}`);
    check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);

    summary.ok = true;
    summary.ms = Date.now() - t0;
  } finally {
    clearTimeout(timer);
    await cleanup();
  }
  console.log(JSON.stringify(summary));
}

main().then(
  () => process.exit(0),
  (e) => {
    const msg = e instanceof Failure ? e.message : e && e.stack ? e.stack : String(e);
    summary.ok = false;
    summary.error = msg.split('\n')[0];
    summary.ms = Date.now() - t0;
    console.log(JSON.stringify(summary));
    console.error('FAIL: ' + msg);
    process.exit(1);
  },
);
