// End to end in Firefox ESR (puppeteer-core, Debian's firefox-esr, never a browser download):
// the sign flow — the demo page asks, Segel's window takes the PIN, the signature verifies.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, verify } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { EXT_ROOT, FIREFOX_UUID, GECKO_ID, PIN, Stack } from './harness.mjs';

const FIREFOX = process.env.FIREFOX ?? '/usr/lib/firefox-esr/firefox-esr';
let stack;
let browser;

before(async () => {
  if (!existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} missing: apt-get install firefox-esr (scripts/install-test-deps)`);
  }
  stack = await Stack.start({ browser: 'none' });
  // Firefox's own certificate store, in the profile.
  const profile = join(stack.dir, 'firefox-profile');
  mkdirSync(profile, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${profile}`, '-N', '--empty-password'], { env: stack.env });
  execFileSync('certutil', ['-d', `sql:${profile}`, '-A', '-n', 'segel-local-ca', '-t', 'C,,', '-i', stack.endpoint.ca_cert], { env: stack.env });
  writeFileSync(join(profile, 'user.js'), '');
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    userDataDir: profile,
    env: { ...stack.env, MOZ_HEADLESS: '1' },
    extraPrefsFirefox: {
      'extensions.webextensions.uuids': JSON.stringify({ [GECKO_ID]: FIREFOX_UUID }),
      'intl.locale.requested': 'en-US',
      'network.proxy.type': 0,
      'app.update.enabled': false,
      'browser.shell.checkDefaultBrowser': false,
      'datareporting.policy.dataSubmissionEnabled': false,
      'toolkit.telemetry.enabled': false,
    },
  });
  await browser.installExtension(join(EXT_ROOT, 'dist/firefox'));
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await stack?.stop();
});

test('Firefox: sign a hash through Segel window; the signature verifies', async () => {
  const fp = createHash('sha256').update(stack.certDer).digest('hex');
  const page = await browser.newPage();
  await page.goto(`${stack.allowed.origin}/`);
  await page.waitForFunction(() => window.Segel !== undefined);
  const status = await page.evaluate(() => window.Segel.status());
  assert.equal(status.agent.available, true, JSON.stringify(status));
  assert.equal(status.agent.allowed, true);

  const data = randomBytes(80);
  const digest = createHash('sha256').update(data).digest('base64');
  const before = new Set(browser.targets());
  const pending = page.evaluate(
    ([c, d]) =>
      window.Segel.sign({ certificate: c, digest: d, digestAlgorithm: 'SHA-256', documentName: 'penawaran.pdf' }).then(
        (v) => ({ ok: true, v }),
        (e) => ({ ok: false, code: e.code, message: e.message }),
      ),
    [fp, digest],
  );
  // Segel's window: the new top-level page (Firefox over WebDriver BiDi may report an
  // extension page's URL late, so it is found as the new target and checked by its content).
  const target = await browser.waitForTarget((t) => t.type() === 'page' && !before.has(t), { timeout: 30000 });
  const w = await target.page();
  await w.waitForFunction((uuid) => location.href.startsWith(`moz-extension://${uuid}/consent.html`), {}, FIREFOX_UUID);
  await w.waitForSelector('#pin-block:not([hidden])');
  assert.equal(await w.$eval('#site', (e) => e.textContent), stack.allowed.origin);
  await w.type('#pin', PIN);
  await w.click('#approve');
  const r = await pending;
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.v.algorithm, 'ecdsa-sha256');
  assert.ok(verify('sha256', data, stack.certPem, Buffer.from(r.v.signature, 'base64')));
});
