// End to end, sealed bids: the demo page → Segel.seal / Segel.open → Segel's window (files
// picked with a file input, streamed to the daemon) → `segel serve` → SoftHSM2, in Debian
// Chromium. The vendor key (P-256) and the committee key (RSA-2048) are on the test token.
// SEGEL_E2E_BIG_MB sets the size of the large bid (default 200 MB).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PIN, Stack } from './harness.mjs';

const FIXTURES = new URL('../../../tests/fixtures/', import.meta.url).pathname;
let stack;
let vendor;
let pokja;
let pokjaB64;

before(async () => {
  stack = await Stack.start();
  vendor = createHash('sha256').update(stack.certDer).digest('hex');
  pokja = createHash('sha256').update(stack.pokjaCertDer).digest('hex');
  pokjaB64 = stack.pokjaCertDer.toString('base64');
});

after(async () => {
  await stack?.stop();
});

function call(page, fn, arg) {
  return page.evaluate(
    async ([src, a]) => {
      try {
        const value = await new Function('Segel', 'a', `return (${src})(Segel, a);`)(window.Segel, a);
        return { ok: true, value };
      } catch (e) {
        return { ok: false, code: e.code, message: e.message, retriesLeft: e.retriesLeft, name: e.name };
      }
    },
    [fn.toString(), arg],
  );
}

const sealCall = (Segel, a) => Segel.seal({ certificate: a.certificate, recipients: a.recipients });
const openCall = (Segel, a) => Segel.open({ certificate: a.certificate });

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) {
    h.update(chunk);
  }
  return h.digest('hex');
}

/** Files named `name` anywhere under the private HOME (the daemon's work folder is there). */
function held(name) {
  return readdirSync(stack.home, { recursive: true }).filter((p) => String(p).endsWith(`/${name}`));
}

/** The daemon's peak resident memory (kB). */
function daemonHwmKb() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${stack.daemon.pid}/status`, 'utf8'));
  assert.ok(m, 'no VmHWM');
  return Number(m[1]);
}

/** A download of `bytes` that appeared after `seen` (paths already there), renamed to `name`
 * (Playwright names downloads by a GUID). */
async function waitDownload(seen, bytes, name) {
  const t0 = Date.now();
  for (;;) {
    const d = stack.downloaded().find((f) => !seen.has(f.path) && f.bytes === bytes);
    if (d !== undefined) {
      const to = join(stack.dir, 'saved', name);
      mkdirSync(join(stack.dir, 'saved'), { recursive: true });
      renameSync(d.path, to);
      return to;
    }
    assert.ok(Date.now() - t0 < 300_000, `no download of ${bytes} bytes: ${JSON.stringify(stack.downloaded())}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Seal `file` through the page; returns [result line, path of the downloaded .p7m]. */
async function seal(page, file) {
  const seen = new Set(stack.downloaded().map((f) => f.path));
  const win = stack.waitWindow();
  const pending = call(page, sealCall, { certificate: vendor, recipients: [pokjaB64] });
  const w = await win;
  await w.waitForSelector('#files-block:not([hidden])');
  assert.match(await w.textContent('#operation'), /Seal/);
  await w.setInputFiles('#files', file);
  await w.waitForSelector('#file-list tr', { timeout: 300_000 });
  const want = await sha256File(file);
  // The window shows the name, size and hash the daemon computed while receiving the stream.
  assert.equal(await w.textContent('#file-list tr td:nth-child(3)'), want);
  if (await w.isVisible('#pin-block')) {
    await w.fill('#pin', PIN);
  }
  if (await w.isVisible('#remember-block')) {
    await w.check('#remember');
  }
  await w.click('#approve');
  const r = await pending;
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.value.length, 1);
  assert.equal(r.value[0].sha256, want);
  const p7m = await waitDownload(seen, r.value[0].sealedBytes, r.value[0].sealed);
  return [r.value[0], p7m, want];
}

/** Open `p7m` through the page with `pin`; returns the page's result and the window. */
async function open(page, p7m, pin) {
  const win = stack.waitWindow();
  const pending = call(page, openCall, { certificate: pokja });
  const w = await win;
  await w.waitForSelector('#files-block:not([hidden])');
  await w.setInputFiles('#files', p7m);
  await w.waitForSelector('#file-list tr', { timeout: 300_000 });
  assert.equal(await w.textContent('#file-list tr td:nth-child(3)'), await sha256File(p7m));
  await w.fill('#pin', pin);
  await w.click('#approve');
  return [await pending, w];
}

test('cancel in the window → USER_CANCELLED; a wrong PIN on open → PIN_INCORRECT with the retries shown, one C_Login', async () => {
  const page = await stack.page('allowed');
  const win = stack.waitWindow();
  const pending = call(page, sealCall, { certificate: vendor, recipients: [pokjaB64] });
  const w = await win;
  await w.waitForSelector('#files-block:not([hidden])');
  // A file picked (and streamed to the daemon), then cancelled: the daemon drops it.
  const picked = join(stack.dir, 'batal.pdf');
  writeFileSync(picked, randomBytes(5000));
  await w.setInputFiles('#files', picked);
  await w.waitForSelector('#file-list tr');
  assert.equal(held('batal.pdf').length, 1, 'the daemon holds the picked file');
  await w.click('#cancel');
  const c = await pending;
  assert.equal(c.code, 'USER_CANCELLED', JSON.stringify(c));
  assert.deepEqual(held('batal.pdf'), [], 'the cancelled file is still held by the daemon');

  // A bid sealed with the CLI on the same token (this case runs first: the daemon has not
  // logged in yet, so the wrong PIN reaches the token).
  const file = join(stack.dir, 'salah.pdf');
  writeFileSync(file, randomBytes(1000));
  const outDir = join(stack.dir, 'cli-sealed');
  mkdirSync(outDir);
  try {
    execFileSync(
      stack.segel,
      ['--module', '/usr/lib/softhsm/libsofthsm2.so', 'seal', '--cert', vendor, '--to', `${FIXTURES}pokja-rsa2048.crt.pem`, '--out-dir', outDir, file],
      { env: { ...stack.env, SEGEL_PIN: PIN }, stdio: 'pipe' },
    );
  } catch (e) {
    throw new Error(`segel seal: ${e.stdout} ${e.stderr}`, { cause: e });
  }
  const p7m = join(outDir, 'salah.pdf.p7m');
  const mark = stack.tokenCalls().length;
  const [r, ow] = await open(page, p7m, '999999');
  assert.equal(r.ok, false);
  assert.equal(r.code, 'PIN_INCORRECT', JSON.stringify(r));
  assert.ok('retriesLeft' in r);
  await ow.waitForSelector('#error:not([hidden])');
  assert.match(await ow.textContent('#error'), /Wrong PIN/);
  assert.equal(await ow.isVisible('#approve'), false);
  const logins = stack.tokenCalls().slice(mark).filter((x) => x.fn === 'C_Login');
  assert.equal(logins.length, 1, JSON.stringify(logins));
  await page.close();
});

test('seal a bid as the vendor, open it as the committee: same SHA-256, opened bid byte for byte, openssl agrees', async () => {
  const page = await stack.page('allowed');
  const file = join(stack.dir, 'penawaran.pdf');
  writeFileSync(file, randomBytes(300_000));
  const [line, p7m, want] = await seal(page, file);
  assert.equal(line.file, 'penawaran.pdf');
  assert.equal(line.sealed, 'penawaran.pdf.p7m');
  assert.equal(line.bytes, 300_000);
  assert.deepEqual(held('penawaran.pdf'), [], 'the daemon still holds the bid after sealing it');

  // OpenSSL decrypts the saved .p7m with the committee key and verifies the vendor's signature.
  const inner = join(stack.dir, 'inner.p7m');
  const plain = join(stack.dir, 'plain.pdf');
  execFileSync('openssl', ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', p7m, '-recip', `${FIXTURES}pokja-rsa2048.crt.pem`, '-inkey', `${FIXTURES}pokja-rsa2048.key.pem`, '-outform', 'DER', '-out', inner], { stdio: 'pipe' });
  execFileSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', inner, '-CAfile', `${FIXTURES}chain.pem`, '-purpose', 'any', '-out', plain], { stdio: 'pipe' });
  assert.equal(await sha256File(plain), want);

  const seen = new Set(stack.downloaded().map((f) => f.path));
  const [r] = await open(page, p7m, PIN);
  assert.equal(r.ok, true, JSON.stringify(r));
  const bid = r.value.bids[0];
  // The test CA is not a trust anchor of the daemon: opened, with that warning.
  assert.match(bid.status, /^opened/, JSON.stringify(bid));
  assert.equal(bid.saved, 'penawaran.pdf');
  assert.equal(bid.signatureValid, true);
  assert.equal(bid.sha256, want);
  assert.equal(bid.size, 300_000);
  assert.equal(bid.file, 'penawaran.pdf.p7m');
  assert.match(bid.vendor, /\S/);
  const opened = await waitDownload(seen, 300_000, 'opened-penawaran.pdf');
  assert.deepEqual(readFileSync(opened), readFileSync(file));
  await page.close();
});

test('a large bid (SEGEL_E2E_BIG_MB, default 200 MB) is sealed and opened streamed: hashes match, the daemon stays small', async () => {
  const mb = Number(process.env.SEGEL_E2E_BIG_MB ?? 200);
  const page = await stack.page('allowed');
  const file = join(stack.dir, 'besar.bin');
  const out = createWriteStream(file);
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < mb; i++) {
    chunk[0] = i & 0xff;
    if (!out.write(chunk)) {
      await new Promise((r) => out.once('drain', r));
    }
  }
  await new Promise((r) => out.end(r));
  const hwm0 = daemonHwmKb();
  const [line, p7m, want] = await seal(page, file);
  assert.equal(line.bytes, mb << 20);
  const seen = new Set(stack.downloaded().map((f) => f.path));
  // The site (consent remembered while sealing) follows the opening job's progress.
  await page.evaluate(() => {
    window.progressSeen = [];
    window.Segel.on('progress', (e) => window.progressSeen.push(e));
  });
  const [r] = await open(page, p7m, PIN);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.value.bids[0].sha256, want);
  const progress = await page.evaluate(() => window.progressSeen);
  assert.ok(progress.some((e) => e.type === 'job_progress'), JSON.stringify(progress));
  const opened = await waitDownload(seen, mb << 20, 'opened-besar.bin');
  assert.equal(await sha256File(opened), want);
  const hwm = daemonHwmKb();
  console.log(`# large bid ${mb} MiB: daemon VmHWM ${hwm0} kB before, ${hwm} kB after`);
  // Bounded: whole-file buffering would add at least the bid's size (200 MiB by default).
  assert.ok(hwm - hwm0 < 64 << 10, `daemon VmHWM grew by ${hwm - hwm0} kB for a ${mb} MiB bid`);
  await page.close();
});
