// Drives the page of a running `instructmol serve` in headless Chromium (playwright-core):
// loads it, picks a model, enters caffeine, checks the 2D drawing, asks, waits for the
// streamed answer, saves a screenshot; then types an invalid SMILES and checks that the error
// and its position are shown. Exits non-zero when a step fails. Run via scripts/browser_check.sh.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const CAFFEINE = 'CN1C=NC2=C1C(=O)N(C(=O)N2C)C';
const INVALID = 'CC(=O)O)C'; // unmatched ')'
const INVALID_AT = 7; // its 0-based position

function usage() {
  console.error(
    'usage: node browser_check.js URL SCREENSHOT.png [--model NAME] [--api-key KEY] [--question TEXT] [--max-tokens N] [--timeout SECONDS]'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: null, shot: null, model: null, apiKey: null, question: null, maxTokens: null, timeout: 300 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage();
      return argv[++i];
    };
    if (a === '--model') opts.model = next();
    else if (a === '--api-key') opts.apiKey = next();
    else if (a === '--question') opts.question = next();
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--max-tokens') opts.maxTokens = next();
    else if (a.startsWith('--')) usage();
    else rest.push(a);
  }
  if (rest.length !== 2) usage();
  [opts.url, opts.shot] = rest;
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'instructmol-browser-'));
  const problems = []; // page errors, failed requests: reported, and page errors fail the check
  let step = 'launch';
  let context = null;
  let page = null;
  const ok = (msg) => console.log('ok   ' + msg);
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
      deviceScaleFactor: 1,
    });
    page = context.pages()[0] || (await context.newPage());
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push('console: ' + m.text());
    });
    page.on('requestfailed', (r) => {
      const f = r.failure();
      if (!(f && /ERR_ABORTED/.test(f.errorText))) problems.push('request failed: ' + r.url() + ' ' + (f ? f.errorText : ''));
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push('HTTP ' + r.status() + ' ' + r.request().method() + ' ' + r.url());
    });

    step = 'load the page';
    const resp = await page.goto(opts.url, { waitUntil: 'load', timeout: 30000 });
    if (!resp || !resp.ok()) throw new Error('GET ' + opts.url + ' -> ' + (resp ? resp.status() : 'no response'));
    const missing = problems.filter((p) => /^HTTP \d+ GET \S*\/static\//.test(p));
    if (missing.length) throw new Error('the page\'s files are not served: ' + missing.join('; '));
    ok('page loaded: ' + (await page.title()));

    if (opts.apiKey) {
      step = 'enter the API key';
      await page.fill('#api-key', opts.apiKey);
      await page.press('#api-key', 'Tab'); // change event: stored, models reloaded
      ok('API key entered');
    }

    step = 'list the models';
    await page.waitForSelector('#model:not([disabled]), #error:not([hidden])', { timeout: 30000 });
    if (await page.isVisible('#error')) {
      throw new Error('the page shows: ' + (await page.textContent('#error')).replace(/\s+/g, ' ').replace(/dismiss$/, '').trim());
    }
    const models = await page.$$eval('#model option', (os) => os.map((o) => o.value));
    let model = opts.model;
    if (model && !models.includes(model)) throw new Error('model ' + model + ' not offered; the page lists ' + models.join(', '));
    if (!model) model = models[0];
    await page.selectOption('#model', model);
    ok('models listed (' + models.join(', ') + '); picked ' + model);
    const yesNo = await page.evaluate(() => /p\(Yes\)/.test(document.getElementById('model-info').textContent));

    step = 'enter caffeine';
    await page.fill('#smiles', CAFFEINE);
    await page.waitForSelector('#mol-status[data-state="valid"], #mol-status[data-state="invalid"], #mol-status[data-state="error"]', { timeout: 30000 });
    const status = await page.textContent('#mol-status');
    if ((await page.getAttribute('#mol-status', 'data-state')) !== 'valid') throw new Error('caffeine not accepted: ' + status);
    ok('molecule checked: ' + status.trim());

    step = 'draw the molecule';
    await page.waitForSelector('#mol-drawing[data-state="drawn"] svg', { timeout: 60000 });
    const drawing = await page.$eval('#mol-drawing svg', (svg) => {
      const r = svg.getBoundingClientRect();
      return {
        width: Math.round(r.width),
        height: Math.round(r.height),
        shapes: svg.querySelectorAll('path, line, polyline, ellipse, circle').length,
        labels: svg.querySelectorAll('text').length,
      };
    });
    if (drawing.width < 150 || drawing.height < 100 || drawing.shapes < 14) {
      throw new Error('the drawing looks empty: ' + JSON.stringify(drawing));
    }
    ok('2D drawing: ' + drawing.width + 'x' + drawing.height + ' px, ' + drawing.shapes + ' shapes');

    step = 'ask';
    if (opts.question) await page.fill('#question', opts.question);
    if (opts.maxTokens) await page.fill('#max-tokens', String(opts.maxTokens));
    const question = await page.inputValue('#question');
    await page.waitForSelector('#ask:not([disabled])', { timeout: 10000 });
    await page.click('#ask');
    await page.waitForSelector('#answer-status[data-state="streaming"], #answer-status[data-state="done"], #answer-status[data-state="error"]', {
      timeout: opts.timeout * 1000,
    });
    step = 'wait for the streamed answer';
    await page.waitForSelector('#answer-status[data-state="done"], #answer-status[data-state="error"], #answer-status[data-state="stopped"]', {
      timeout: opts.timeout * 1000,
    });
    const answerState = await page.getAttribute('#answer-status', 'data-state');
    if (answerState !== 'done') {
      const err = await page.textContent('#error');
      throw new Error('the answer ended as ' + answerState + ': ' + (err || '').replace(/\s+/g, ' ').trim());
    }
    const answer = (await page.textContent('#answer')).trim();
    const stats = (await page.textContent('#answer-stats')).trim();
    if (!answer) throw new Error('empty answer');
    ok('asked "' + question + '"; answer (' + stats + '):\n     ' + answer.replace(/\n/g, '\n     '));
    if (yesNo) {
      const probVisible = await page.isVisible('#prob');
      if (!probVisible) throw new Error('yes/no model but no p(Yes) shown: ' + (await page.textContent('#answer-status')));
      ok('p(Yes) shown: ' + (await page.textContent('#prob-value')));
    }
    const errorShown = await page.isVisible('#error');
    if (errorShown) throw new Error('an error is shown: ' + (await page.textContent('#error')).replace(/\s+/g, ' '));

    step = 'screenshot';
    fs.mkdirSync(path.dirname(path.resolve(opts.shot)), { recursive: true });
    await page.screenshot({ path: opts.shot });
    ok('screenshot ' + opts.shot);

    step = 'invalid SMILES';
    await page.fill('#smiles', INVALID);
    await page.waitForSelector('#mol-status[data-state="invalid"], #mol-status[data-state="valid"], #mol-status[data-state="error"]', { timeout: 30000 });
    const bad = (await page.textContent('#mol-status')).trim();
    if ((await page.getAttribute('#mol-status', 'data-state')) !== 'invalid') throw new Error(INVALID + ' was not reported invalid: ' + bad);
    if (!/\d|end of the input/.test(bad)) throw new Error('the error names no position: ' + bad);
    if (!(await page.isVisible('#mol-caret mark'))) throw new Error('no caret under the input for: ' + bad);
    const marked = await page.$eval('#mol-caret', (el) => ({ pos: el.dataset.position, ch: el.querySelector('mark').textContent }));
    if (marked.pos !== String(INVALID_AT) || marked.ch !== INVALID[INVALID_AT]) {
      throw new Error('the caret marks ' + JSON.stringify(marked) + ', expected the \')\' at 0-based ' + INVALID_AT);
    }
    if (!(await page.isDisabled('#ask'))) throw new Error('Ask stays enabled for an invalid molecule');
    if ((await page.getAttribute('#mol-drawing', 'data-state')) === 'drawn') throw new Error('the old drawing stays for an invalid molecule');
    ok('invalid SMILES ' + INVALID + ': "' + bad + '"; marked character ' + JSON.stringify(marked.ch) + ' at 0-based ' + marked.pos);
    const badShot = opts.shot.replace(/(\.png)?$/i, '-invalid.png');
    await page.screenshot({ path: badShot });
    ok('screenshot ' + badShot);

    const serious = pageErrors.map((e) => 'page error: ' + e);
    if (serious.length) throw new Error(serious.join('\n'));
    for (const p of problems) console.log('note ' + p);
    console.log('browser check passed');
    return 0;
  } catch (e) {
    console.error('FAIL at step "' + step + '": ' + (e && e.message ? e.message : e));
    for (const p of problems) console.error('note ' + p);
    if (page) {
      const failShot = opts.shot.replace(/(\.png)?$/i, '-failed.png');
      try {
        await page.screenshot({ path: failShot });
        console.error('screenshot of the failure: ' + failShot);
      } catch (_) {
        /* the page is gone */
      }
    }
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code));
