// Browser tests of the tongban web console: Debian's headless chromium
// (/usr/bin/chromium) driven by playwright-core, against a real gateway
// with both simulated districts (../harness), signing in with the real
// `tongban console login`.
//
// Screenshots go to $CONSOLE_SCREENSHOTS when set (docs/console/ for the
// README: `CONSOLE_SCREENSHOTS=../docs/console npm test`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(join(tmpdir(), 'console-tests-'));
const shots = process.env.CONSOLE_SCREENSHOTS ? join(process.cwd(), process.env.CONSOLE_SCREENSHOTS) : join(work, 'shots');
const exec = promisify(execFile);

let harness, info, browser;

async function build(pkg, out) {
  await exec('go', ['build', '-o', out, pkg], { cwd: repo, maxBuffer: 1 << 24 });
  return out;
}

// run runs a program and returns its exit code and output (no throw).
async function run(cmd, args) {
  try {
    const { stdout, stderr } = await exec(cmd, args, { timeout: 60000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

let tongban;
before(async () => {
  mkdirSync(shots, { recursive: true });
  [tongban] = await Promise.all([
    build('./cmd/tongban', join(work, 'tongban')),
    build('./console-tests/harness', join(work, 'harness')),
  ]);
  harness = spawn(join(work, 'harness'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: harness.stdout });
  info = await new Promise((resolve, reject) => {
    lines.once('line', (l) => resolve(JSON.parse(l)));
    harness.once('exit', (code) => reject(new Error(`harness exited with ${code}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  harness?.stdin.end();
  await new Promise((r) => (harness && harness.exitCode === null ? harness.once('exit', r) : r()));
  rmSync(work, { recursive: true, force: true });
});

async function newPage(lang) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, locale: 'zh-CN', viewport: { width: 1360, height: 900 } });
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept()); // the console's confirmations
  if (lang === 'en') {
    await page.goto(`${info.url}/console/lang/en?back=/console/login`);
  }
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, name + '.png'), fullPage: true });
}

// loginCLI signs the challenge the page shows with a role's key, as a
// person would in a terminal: `tongban console login … CHALLENGE`.
async function loginCLI(page, role) {
  await page.goto(`${info.url}/console/login`);
  const challenge = await page.getAttribute('#challenge', 'data-challenge');
  assert.match(challenge, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){5}$/);
  return run(tongban, ['console', 'login', '--gateway', info.url,
    '--cert', join(info.certs, `${role}.pem`), '--key', join(info.certs, `${role}.key`),
    '--tls-ca', join(info.certs, 'tls.pem'), challenge]);
}

async function signedIn(role) {
  const page = await newPage();
  const res = await loginCLI(page, role);
  assert.equal(res.code, 0, res.stderr);
  const link = res.stdout.trim();
  assert.match(link, /\/console\/login\/[A-Za-z0-9_-]{43}$/);
  await page.goto(link);
  await page.waitForURL('**/console/exchanges');
  return page;
}

describe('auditor', () => {
  let page;
  before(async () => {
    const p = await newPage();
    await p.goto(`${info.url}/console/login`);
    await shot(p, 'login');
    await p.context().close();
    page = await signedIn('auditor');
  });
  after(() => page.context().close());

  test('finds a case by its Liwan number', async () => {
    assert.equal(await page.textContent('.role'), '审计员');
    await page.fill('input[name=case]', info.seed.LiwanCase);
    await page.click('button[type=submit].primary');
    await page.waitForURL(/case=/);
    const rows = page.locator('#results tbody tr');
    assert.equal(await rows.count(), 1);
    const row = await rows.first().textContent();
    assert.ok(row.includes(info.seed.NanhaiCase) && row.includes(info.seed.LiwanCase) && row.includes('已送达'), row);
    await shot(page, 'exchanges');
    await rows.first().locator('a').click();
    await page.waitForURL(/\/console\/exchanges\/[0-9A-Z]+$/);
    assert.equal((await page.textContent('#from-case .caseno')).trim(), info.seed.NanhaiCase);
    assert.equal((await page.textContent('#to-case .caseno')).trim(), info.seed.LiwanCase);
    assert.match(await page.textContent('#decision'), /准予跨区办理/);
    assert.match(await page.textContent('#timeline'), /已送达荔湾区/);
  });

  test('verifies inclusion in the browser against the latest checkpoint', async () => {
    const buttons = page.locator('button[data-verify-index]');
    const n = await buttons.count();
    assert.ok(n >= 2, `entries: ${n}`);
    for (let i = 0; i < n; i++) {
      await buttons.nth(i).click();
    }
    for (let i = 0; i < n; i++) {
      const idx = await buttons.nth(i).getAttribute('data-verify-index');
      const out = page.locator(`[data-verify-result="${idx}"]`);
      await out.filter({ hasText: /✓|✗/ }).waitFor();
      assert.match(await out.textContent(), /^✓ 已收录于检查点/);
      assert.equal(await out.getAttribute('class'), 'verify-result ok');
    }
    await page.locator('#entries details').first().evaluate((d) => { d.open = true; });
    await shot(page, 'exchange');

    // The check is real: one changed byte of the entry, and it fails.
    await page.route('**/console/api/inclusion/*', async (route) => {
      const resp = await route.fetch();
      const body = await resp.json();
      const bytes = Buffer.from(body.entry, 'base64');
      bytes[bytes.length - 2] ^= 1;
      body.entry = bytes.toString('base64');
      await route.fulfill({ response: resp, json: body });
    });
    await buttons.first().click();
    const idx = await buttons.first().getAttribute('data-verify-index');
    const out = page.locator(`[data-verify-result="${idx}"]`);
    await out.filter({ hasText: '✗' }).waitFor();
    assert.match(await out.textContent(), /验证失败/);
    await page.unroute('**/console/api/inclusion/*');
  });

  test('sees the log and exports a period that audit verify accepts', async () => {
    await page.click('nav a[href="/console/log"]');
    await page.waitForURL('**/console/log');
    assert.ok(Number(await page.textContent('#log-size')) > 10);
    assert.match(await page.textContent('#signer'), /CN=/);
    assert.ok(await page.locator('svg.chart rect').count() === 24);
    await shot(page, 'log');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-button')]);
    assert.match(download.suggestedFilename(), /^tongban-log-.*\.tar$/);
    const file = join(work, download.suggestedFilename());
    await download.saveAs(file);
    const res = await run(tongban, ['audit', 'verify', '--log-key', join(info.certs, 'log.pem'), file]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  test('cannot reach policy or delivery actions', async () => {
    assert.equal(await page.locator('nav a[href="/console/policy"]').count(), 0);
    const resp = await page.goto(`${info.url}/console/policy`);
    assert.equal(resp.status(), 403);
    assert.match(await page.textContent('main'), /无权访问/);
    await shot(page, 'forbidden');
    // Not even with its own session's CSRF token.
    await page.goto(`${info.url}/console/exchanges`);
    const status = await page.evaluate(async () => {
      const csrf = document.querySelector('input[name=csrf]').value;
      const r = await fetch('/console/policy/rollback/x', { method: 'POST', body: new URLSearchParams({ csrf }) });
      return r.status;
    });
    assert.equal(status, 403);
  });
});

describe('administrator', () => {
  let page;
  before(async () => {
    // This time the sign-in page follows the link by itself once the
    // challenge is signed.
    page = await newPage();
    const res = await loginCLI(page, 'admin');
    assert.equal(res.code, 0, res.stderr);
    await page.waitForURL('**/console/exchanges', { timeout: 15000 });
    assert.equal(await page.textContent('.role'), '管理员');
  });
  after(() => page.context().close());

  test('disables an item: upload, validate, simulate, activate; the next submission is denied', async () => {
    await page.click('nav a[href="/console/policy"]');
    await page.waitForURL('**/console/policy');
    const before = await page.textContent('#active-revision');
    assert.ok(await page.locator(`#catalog tr[data-item="${info.disabledItem}"]:not(.off)`).count() === 1);
    await shot(page, 'policy');

    await page.setInputFiles('input[name=bundle]', info.draft);
    await page.click('#upload-button');
    await page.waitForURL(/\/console\/policy\/drafts\/[0-9A-Z]+$/);
    assert.match(await page.textContent('#changes'), /可跨区[\s\S]*是[\s\S]*否/);
    assert.ok(await page.isDisabled('#activate-button'));

    await page.click('#validate-button');
    await page.waitForSelector('#validation-result');
    assert.match(await page.textContent('#validation-result'), /校验通过/);

    await page.click('#simulate-button');
    await page.waitForSelector('#simulation-changes');
    const changes = page.locator('#simulation-changes tbody tr');
    assert.ok(await changes.count() >= info.seed.Changes.length, `changes: ${await changes.count()}`);
    const first = await changes.first().textContent();
    assert.match(first, /准予跨区办理[\s\S]*不予跨区办理/);
    assert.match(await page.textContent('#simulation-summary'), /由准予变为拒绝/);
    await shot(page, 'draft-simulation');

    await page.click('#activate-button');
    await page.waitForURL('**/console/policy');
    assert.match(await page.textContent('.flash.ok'), /已启用政策版本/);
    assert.notEqual(await page.textContent('#active-revision'), before);
    assert.ok(await page.locator(`#catalog tr[data-item="${info.disabledItem}"].off`).count() === 1);

    const r = await fetch(`${info.control}/submit?from=nanhai&item=${info.disabledItem}`, { method: 'POST' });
    const sub = await r.json();
    assert.equal(sub.status, 403, sub.body);
    assert.match(sub.body, /policy_denied/);

    await page.goto(`${info.url}/console/exchanges?state=denied&item=${info.disabledItem}`);
    const denied = page.locator('#results tbody tr.row-denied');
    assert.ok(await denied.count() >= 1);
    await denied.first().locator('a').click();
    await page.waitForURL(/\/console\/denials\/\d+$/);
    assert.match(await page.textContent('#decision'), /item_not_cross_district/);
    await shot(page, 'denial');
  });

  test('re-drives a dead delivery', async () => {
    await page.click('nav a[href="/console/deliveries"]');
    await page.waitForURL(/\/console\/deliveries/);
    const row = page.locator(`tr[data-delivery="${info.seed.DeadDelivery}"]`);
    assert.match(await row.textContent(), /已放弃/);
    await shot(page, 'deliveries');
    await row.locator('button').click();
    await page.waitForURL(/state=dead/);
    assert.match(await page.textContent('.flash.ok'), /已重新排队/);
    assert.equal(await page.locator(`tr[data-delivery="${info.seed.DeadDelivery}"]`).count(), 0);
  });

  test('reads the exchange page in English', async () => {
    await page.goto(`${info.url}/console/lang/en?back=/console/exchanges`);
    await page.fill('input[name=case]', info.seed.PhysicianNanhai);
    await page.click('button[type=submit].primary');
    await page.locator('#results tbody tr a').first().click();
    await page.waitForURL(/\/console\/exchanges\/[0-9A-Z]+$/);
    assert.match(await page.textContent('#timeline'), /Status: approved/);
    assert.equal(await page.locator('#entries').count(), 0); // log entries are the auditors'
    await shot(page, 'exchange-en');
  });
});

describe('partner', () => {
  test('a partner key cannot sign in', async () => {
    const page = await newPage();
    for (const partner of ['nanhai', 'liwan']) {
      const res = await loginCLI(page, partner);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /forbidden: only administrators and auditors/);
      assert.equal(res.stdout, '');
    }
    await page.waitForTimeout(2000); // the page polls: nothing was signed
    assert.ok(page.url().endsWith('/console/login'));
    assert.match(await page.textContent('.waiting'), /等待签名/);
    const resp = await page.goto(`${info.url}/console/exchanges`);
    assert.ok(resp.url().endsWith('/console/login'));
    await page.context().close();
  });
});
