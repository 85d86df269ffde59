// End to end, the enrolment and PIN pages: Segel's own extension pages in Debian Chromium →
// `segel serve` → SoftHSM2 (the harness's empty token "spare", user PIN 1234, SO PIN
// 87654321). A key made through the page, its request checked by `openssl req -verify`, a
// certificate issued by the test CA imported through the page; then the PIN changed, a wrong
// PIN refused, and the PIN unblocked with the SO PIN — each checked on the token itself with
// pkcs11-tool, not only by what the page says.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, Stack, run } from './harness.mjs';

const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const FIXTURES = join(REPO, 'tests/fixtures');
let stack;

before(async () => {
  stack = await Stack.start();
});

after(async () => {
  await stack?.stop();
});

/** pkcs11-tool on the spare token (a process of its own; SoftHSM's files are shared). */
function spare(args) {
  return run('pkcs11-tool', ['--module', SOFTHSM, '--token-label', 'spare', ...args], stack.env);
}

/** Does `pin` log in to the spare token? */
function loginWorks(pin) {
  try {
    spare(['--login', '--pin', pin, '--list-objects', '--type', 'privkey']);
    return true;
  } catch {
    return false;
  }
}

async function openPage(name, query = '') {
  const page = await stack.context.newPage();
  await page.goto(`chrome-extension://${stack.extensionId}/${name}${query}`);
  return page;
}

const APPLICANT = {
  name: 'Siti Rahayu',
  email: 'siti@maju-jaya.co.id',
  org: 'PT Maju Jaya',
  unit: 'Pengadaan',
  city: 'Kota Bandung',
  province: 'Jawa Barat',
  npwp: '01.234.567.8-901.000',
  nik: '3273016505850002',
};

test('enrolment page: bad input is marked and sent nowhere; a key made on the token, its request verifies, the issued certificate is imported', async () => {
  const page = await openPage('enroll.html');
  await page.waitForSelector('#token option[value="spare"]', { state: 'attached' });
  await page.selectOption('#token', 'spare');
  await page.selectOption('#key', 'p256');
  for (const [field, value] of Object.entries(APPLICANT)) {
    await page.fill(`#${field}`, value);
  }

  // A malformed NIK: marked on its field, and the token is untouched.
  await page.fill('#nik', '12345');
  await page.fill('#pin', '1234');
  await page.click('#enroll');
  await page.waitForSelector('#nik[aria-invalid=true] + .field-problem');
  assert.match(await page.textContent('#nik + .field-problem'), /16/);
  assert.equal(await page.inputValue('#pin'), '', 'the PIN field is wiped after every try');
  assert.doesNotMatch(spare(['--login', '--pin', '1234', '--list-objects']), /Private Key Object/, 'nothing was made on the token');

  // The good form: a key pair on the token and its PKCS#10 request.
  await page.fill('#nik', APPLICANT.nik);
  await page.fill('#pin', '1234');
  await page.click('#enroll');
  await page.waitForSelector('#result:not([hidden])', { timeout: 60000 });
  assert.equal(await page.locator('.field-problem').count(), 0, 'the earlier marks are cleared');
  const pem = await page.textContent('#request');
  const summary = await page.textContent('#summary');
  assert.match(summary, /Siti Rahayu/);
  const csr = join(stack.dir, 'page.csr');
  writeFileSync(csr, pem);
  const verify = run('openssl', ['req', '-in', csr, '-noout', '-verify', '-subject', '-nameopt', 'multiline,utf8'], stack.env);
  for (const v of ['Siti Rahayu', 'PT Maju Jaya', 'Pengadaan', 'Kota Bandung', 'Jawa Barat']) {
    assert.ok(verify.includes(v), `${v} not in the request's subject:\n${verify}`);
  }
  const keys = spare(['--login', '--pin', '1234', '--list-objects', '--type', 'privkey']);
  assert.match(keys, /Private Key Object; EC/, 'the private key is on the token');

  // Saved through the browser's download manager: the same request.
  await page.click('#save');
  let saved;
  for (let i = 0; i < 100 && saved === undefined; i += 1) {
    saved = stack.downloaded().find((f) => readFileSync(f.path, 'utf8') === pem);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(saved, `the request was not saved: ${JSON.stringify(stack.downloaded())}`);

  // The test CA issues the certificate; imported through the page, next to its key.
  const cert = join(stack.dir, 'issued.pem');
  const ext = join(stack.dir, 'leaf.ext');
  writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n');
  run('openssl', ['x509', '-req', '-in', csr, '-CA', join(FIXTURES, 'issuing-ca.crt.pem'), '-CAkey', join(FIXTURES, 'issuing-ca.key.pem'), '-set_serial', `0x${Date.now().toString(16)}`, '-days', '365', '-extfile', ext, '-out', cert], stack.env);
  writeFileSync(cert, readFileSync(cert, 'utf8') + readFileSync(join(FIXTURES, 'issuing-ca.crt.pem'), 'utf8'));
  await page.setInputFiles('#cert-file', cert);
  await page.fill('#import-pin', '1234');
  await page.click('#import');
  await page.waitForSelector('#imported:not([hidden])', { timeout: 30000 });
  assert.match(await page.textContent('#imported'), /Siti Rahayu/);
  const objects = spare(['--list-objects', '--type', 'cert']);
  assert.match(objects, /Siti Rahayu/, `the certificate is on the token:\n${objects}`);

  // A certificate for another key is refused with the daemon's message, on the page.
  await page.setInputFiles('#cert-file', join(FIXTURES, 'vendor-rsa2048.crt.pem'));
  await page.fill('#import-pin', '1234');
  await page.click('#import');
  await page.waitForSelector('#import-error:not([hidden])', { timeout: 30000 });
  // The localised sentence and the daemon's reason after it.
  assert.match(await page.textContent('#import-error'), /^No matching certificate with its key.*issued for another key/);
  assert.equal(await page.isVisible('#imported'), false);
  await page.close();
});

test('PIN page: status, a mismatched repeat sent nowhere, change, a wrong PIN refused, unblock with the SO PIN', async () => {
  const page = await openPage('pin.html', '?token=spare');
  await page.waitForSelector('#status:not([hidden])');
  assert.equal(await page.inputValue('#token'), 'spare');

  await page.fill('#old-pin', '1234');
  await page.fill('#new-pin', '654321');
  await page.fill('#repeat-pin', '654320');
  await page.click('#change');
  await page.waitForSelector('#repeat-pin[aria-invalid=true] + .field-problem');
  assert.ok(loginWorks('1234'), 'a refused form changes nothing');

  // Too short for the daemon's [pin] rule (default 6): the page shows the daemon's rule.
  await page.fill('#old-pin', '1234');
  await page.fill('#new-pin', '123');
  await page.fill('#repeat-pin', '123');
  await page.click('#change');
  await page.waitForSelector('#change-error:not([hidden])', { timeout: 30000 });
  assert.match(await page.textContent('#change-error'), /at least 6/);
  assert.ok(loginWorks('1234'), 'a refused change changes nothing');

  await page.fill('#old-pin', '1234');
  await page.fill('#new-pin', '654321');
  await page.fill('#repeat-pin', '654321');
  await page.click('#change');
  await page.waitForSelector('#changed:not([hidden])', { timeout: 30000 });
  for (const id of ['#old-pin', '#new-pin', '#repeat-pin']) {
    assert.equal(await page.inputValue(id), '', `${id} is wiped`);
  }
  assert.ok(loginWorks('654321'), 'the new PIN logs in');
  assert.ok(!loginWorks('1234'), 'the old PIN no longer does');

  // The old PIN again: the token refuses it and the page says so.
  await page.fill('#old-pin', '1234');
  await page.fill('#new-pin', '777777');
  await page.fill('#repeat-pin', '777777');
  await page.click('#change');
  await page.waitForSelector('#change-error:not([hidden])', { timeout: 30000 });
  assert.match(await page.textContent('#change-error'), /PIN/);
  assert.ok(loginWorks('654321'), 'a refused change leaves the PIN as it was');

  // Unblock (C_InitPIN after the SO logs in): a new user PIN.
  await page.fill('#so-pin', '87654321');
  await page.fill('#unblock-new-pin', '246810');
  await page.fill('#unblock-repeat-pin', '246810');
  await page.click('#unblock');
  await page.waitForSelector('#unblocked:not([hidden])', { timeout: 30000 });
  assert.ok(loginWorks('246810'), 'the PIN set by unblocking logs in');
  await page.close();
});
