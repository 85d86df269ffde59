// End to end: the demo page → segel.js → content script → background → `segel serve` →
// SoftHSM2, in Debian Chromium. The cases run in order on one stack (one browser, one daemon):
// consent and login state carry from one case to the next, as for a real user.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PIN, READS, REPO, Stack } from './harness.mjs';

let stack;
let fingerprint;

before(async () => {
  stack = await Stack.start();
  fingerprint = createHash('sha256').update(stack.certDer).digest('hex');
});

after(async () => {
  await stack?.stop();
});

/** Run a Segel call in the page; resolves to {ok, value} or {ok:false, code, message, …}. */
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

/** PKCS#11 calls the daemon made after the mark `n` (see Stack.tokenCalls). */
const callsSince = (n) => stack.tokenCalls().slice(n);
const SIGNING = new Set(['C_Login', 'C_SignInit', 'C_Sign']);
const signingSince = (n) => callsSince(n).filter((c) => SIGNING.has(c.fn));
/** Calls beyond reading slot/token state after the mark. */
const touchesSince = (n) => callsSince(n).filter((c) => !READS.has(c.fn));

const signDigest = (Segel, a) => Segel.sign({ certificate: a.certificate, digest: a.digest, digestAlgorithm: 'SHA-256', format: 'raw', documentName: a.name });

function verifyP256(data, signatureB64) {
  return verify('sha256', data, stack.certPem, Buffer.from(signatureB64, 'base64'));
}

test('status on an allowed site without consent: daemon reachable, site allowed, no token details', async () => {
  const page = await stack.page('allowed');
  const r = await call(page, (Segel) => Segel.status());
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.value.agent.available, true);
  assert.equal(r.value.agent.allowed, true);
  assert.equal(r.value.agent.consented, false);
  assert.equal(r.value.tokens, null);
  assert.match(r.value.version, /^\d+\.\d+\.\d+$/);
  await page.close();
});

test('cancel in Segel window → USER_CANCELLED, nothing signed', async () => {
  const page = await stack.page('allowed');
  const mark = stack.tokenCalls().length;
  const win = stack.waitWindow();
  const pending = call(page, signDigest, { certificate: fingerprint, digest: randomBytes(32).toString('base64'), name: 'batal.pdf' });
  const w = await win;
  await w.waitForSelector('#site:not(:empty)');
  assert.equal(await w.textContent('#site'), stack.allowed.origin);
  assert.equal(await w.textContent('#doc-name'), 'batal.pdf');
  assert.match(await w.textContent('#cert-subject'), /\S/);
  await w.click('#cancel');
  const r = await pending;
  assert.equal(r.ok, false);
  assert.equal(r.code, 'USER_CANCELLED');
  assert.equal(r.name, 'SegelError');
  assert.deepEqual(signingSince(mark), [], 'a cancelled request logged in or signed');
  await page.close();
});

test('wrong PIN → PIN_INCORRECT with the tries shown in the window, and no second attempt', async () => {
  const page = await stack.page('allowed');
  const mark = stack.tokenCalls().length;
  const win = stack.waitWindow();
  const pending = call(page, signDigest, { certificate: fingerprint, digest: randomBytes(32).toString('base64'), name: 'salah.pdf' });
  const w = await win;
  await w.waitForSelector('#pin-block:not([hidden])');
  await w.fill('#pin', '999999');
  await w.click('#approve');
  const r = await pending;
  assert.equal(r.ok, false);
  assert.equal(r.code, 'PIN_INCORRECT', JSON.stringify(r));
  assert.ok('retriesLeft' in r);
  // The window says so, keeps only "Close", and does not try again.
  await w.waitForSelector('#error:not([hidden])');
  assert.match(await w.textContent('#error'), /^Wrong PIN\. Segel did not try again\. .*(tries are left|try is left)/);
  assert.equal(await w.isVisible('#approve'), false);
  assert.equal(await w.isDisabled('#pin'), true);
  await new Promise((res) => setTimeout(res, 700));
  // pkcs11-spy: one C_Login, refused, and nothing after it.
  assert.deepEqual(signingSince(mark), [{ fn: 'C_Login', rv: 'CKR_PIN_INCORRECT' }]);
  // "Close" closes the window; the window may be gone before Playwright's click returns.
  const closed = w.waitForEvent('close', { timeout: 10000 });
  await w.click('#close').catch((e) => {
    if (!/closed/.test(String(e))) {
      throw e;
    }
  });
  await closed;
  assert.ok(w.isClosed());
  await page.close();
});

test('sign a hash: window with PIN and "remember this site", signature verifies with the certificate', async () => {
  const page = await stack.page('allowed');
  const data = randomBytes(100);
  const digest = createHash('sha256').update(data).digest('base64');
  const win = stack.waitWindow();
  const pending = call(page, signDigest, { certificate: fingerprint, digest, name: 'penawaran.pdf' });
  const w = await win;
  await w.waitForSelector('#pin-block:not([hidden])');
  assert.equal(await w.textContent('#digest'), Buffer.from(digest, 'base64').toString('hex'));
  assert.equal(await w.isVisible('#remember-block'), true);
  assert.equal(await w.isVisible('#final-try-block'), false, 'the final-try box shows only on the last try');
  assert.equal(await w.isVisible('#pin-pad'), false);
  await w.fill('#pin', PIN);
  await w.check('#remember');
  await w.click('#approve');
  const r = await pending;
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.value.algorithm, 'ecdsa-sha256');
  assert.equal(r.value.certificate, fingerprint);
  assert.ok(verifyP256(data, r.value.signature), 'signature does not verify');
  assert.ok(!verifyP256(randomBytes(100), r.value.signature));
  await page.close();
});

test('remembered site, token logged in: certificates and signing need no window', async () => {
  const page = await stack.page('allowed');
  const opened = [];
  const onPage = (p) => opened.push(p.url());
  stack.context.on('page', onPage);
  const certs = await call(page, (Segel) => Segel.certificates({ purpose: 'sign' }));
  assert.equal(certs.ok, true, JSON.stringify(certs));
  const c = certs.value.find((x) => x.fingerprint === fingerprint);
  assert.ok(c, 'the vendor certificate is listed');
  assert.equal(Buffer.from(c.certificate, 'base64').equals(stack.certDer), true);
  assert.deepEqual(c.usage, ['sign']);
  assert.equal(c.token, 'vendor');
  const data = randomBytes(64);
  const digest = createHash('sha256').update(data).digest('base64');
  // certificate given as the base64 DER from certificates()
  const r = await call(page, signDigest, { certificate: c.certificate, digest, name: 'lagi.pdf' });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.ok(verifyP256(data, r.value.signature));
  // The RSA-2048 certificate on the same token: PKCS#1 v1.5, verified with the certificate.
  const rsaFp = createHash('sha256').update(stack.rsaCertDer).digest('hex');
  assert.ok(certs.value.some((x) => x.fingerprint === rsaFp && x.keyType === 'rsa'), JSON.stringify(certs.value.map((x) => x.keyType)));
  const rsa = await call(page, signDigest, { certificate: rsaFp, digest, name: 'rsa.pdf' });
  assert.equal(rsa.ok, true, JSON.stringify(rsa));
  assert.equal(rsa.value.algorithm, 'rsa-pkcs1-sha256');
  assert.ok(verify('sha256', data, stack.rsaCertPem, Buffer.from(rsa.value.signature, 'base64')));
  const s = await call(page, (Segel) => Segel.status());
  assert.equal(s.value.agent.consented, true);
  assert.equal(s.value.tokens.some((t) => t.label === 'vendor' && t.present), true);
  stack.context.off('page', onPage);
  assert.deepEqual(opened, [], 'no window should open');
  // With the local CA trusted, everything went over HTTPS: the native host gave the endpoint only.
  const asked = stack.nativeHostLog();
  assert.ok(asked.length >= 1 && asked.every((m) => m.type === 'endpoint'), JSON.stringify(asked));
  await page.close();
});

test('Segel.on("token"): a removed token is reported to a remembered site; a site not allowed gets no events', async () => {
  const page = await stack.page('allowed');
  const other = await stack.page('other');
  for (const p of [page, other]) {
    await p.evaluate(() => {
      window.tokenEvents = [];
      window.Segel.on('token', (e) => window.tokenEvents.push(e));
    });
  }
  // The daemon polls tokens once a second while someone listens; let it see the spare token.
  await new Promise((res) => setTimeout(res, 2500));
  stack.removeToken('spare');
  await page.waitForFunction(() => window.tokenEvents.some((e) => e.type === 'token_removed'), null, { timeout: 10000 });
  const events = await page.evaluate(() => window.tokenEvents);
  assert.deepEqual(events.map((e) => [e.type, e.label]), [['token_removed', 'spare']]);
  const refused = await other.evaluate(() => window.tokenEvents);
  assert.equal(refused.length, 1, JSON.stringify(refused));
  assert.equal(refused[0].type, 'error');
  assert.equal(refused[0].error.code, 'ORIGIN_NOT_ALLOWED');
  await page.close();
  await other.close();
});

test('CMS signature over a document verifies with OpenSSL against the test PKI', async () => {
  const page = await stack.page('allowed');
  const data = Buffer.from('Penawaran harga: Rp 1.000.000.000\n');
  const r = await call(page, (Segel, a) => Segel.sign({ certificate: a.fp, data: a.data, format: 'cms', documentName: 'penawaran.txt' }), {
    fp: fingerprint,
    data: data.toString('base64'),
  });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.value.algorithm, 'cms-sha256');
  const p7s = join(stack.dir, 'doc.p7s');
  writeFileSync(p7s, Buffer.from(r.value.signature, 'base64'));
  const out = execFileSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-CAfile', join(REPO, 'tests/fixtures/chain.pem'), '-purpose', 'any'], { stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(out.toString(), data.toString());
  await page.close();
});

test('a site not in the policy is refused, no window opens and the token is not touched', async () => {
  const page = await stack.page('other');
  const mark = stack.tokenCalls().length;
  const opened = [];
  const onPage = (p) => opened.push(p.url());
  stack.context.on('page', onPage);
  const s = await call(page, (Segel) => Segel.status());
  assert.equal(s.ok, true);
  assert.equal(s.value.agent.available, true);
  assert.equal(s.value.agent.allowed, false);
  assert.equal(s.value.tokens, null);
  const certs = await call(page, (Segel) => Segel.certificates());
  assert.equal(certs.code, 'ORIGIN_NOT_ALLOWED');
  const r = await call(page, signDigest, { certificate: fingerprint, digest: randomBytes(32).toString('base64'), name: 'x.pdf' });
  assert.equal(r.code, 'ORIGIN_NOT_ALLOWED', JSON.stringify(r));
  await new Promise((res) => setTimeout(res, 300));
  stack.context.off('page', onPage);
  assert.deepEqual(opened, []);
  assert.deepEqual(touchesSince(mark), [], 'the token was touched');
  await page.close();
});

test('a page forging the allowed origin in its messages gains nothing', async () => {
  const page = await stack.page('other');
  const mark = stack.tokenCalls().length;
  const r = await page.evaluate(
    ([allowed, fp]) =>
      new Promise((resolve) => {
        const id = 'forged-1';
        window.addEventListener('message', (e) => {
          if (e.data?.kind === 'response' && e.data.id === id) {
            resolve(e.data);
          }
        });
        window.postMessage(
          {
            channel: 'segel.id/v1',
            kind: 'request',
            id,
            action: 'sign',
            origin: allowed,
            site: allowed,
            sender: { origin: allowed, url: `${allowed}/` },
            params: { certificate: fp, digest: btoa('x'.repeat(32)), origin: allowed, site: allowed },
          },
          '*',
        );
      }),
    [stack.allowed.origin, fingerprint],
  );
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 'ORIGIN_NOT_ALLOWED');
  assert.deepEqual(touchesSince(mark), [], 'the token was touched');
  await page.close();
});

test('a frame of another site posting into an allowed, remembered page is ignored', async () => {
  const page = await stack.page('allowed');
  const mark = stack.tokenCalls().length;
  await page.evaluate((src) => {
    window.responses = [];
    window.addEventListener('message', (e) => {
      if (e.data?.kind === 'response') {
        window.responses.push(e.data);
      }
    });
    const f = document.createElement('iframe');
    f.src = src;
    document.body.append(f);
    return new Promise((r) => f.addEventListener('load', r));
  }, `${stack.other.origin}/`);
  const frame = page.frames().find((f) => f.url().startsWith(stack.other.origin));
  assert.ok(frame, 'the frame loaded');
  await frame.evaluate(
    ([fp]) => {
      window.parent.postMessage(
        { channel: 'segel.id/v1', kind: 'request', id: 'framed', action: 'sign', params: { certificate: fp, digest: btoa('y'.repeat(32)) } },
        '*',
      );
    },
    [fingerprint],
  );
  await new Promise((res) => setTimeout(res, 1500));
  assert.deepEqual(await page.evaluate(() => window.responses), []);
  assert.deepEqual(touchesSince(mark), [], 'a message from another window reached the token');
  await page.close();
});

test('a page that is not a secure context gets INSECURE_CONTEXT and no answer from the extension', async () => {
  const page = await stack.page('insecure');
  assert.equal(await page.evaluate(() => window.isSecureContext), false);
  const r = await call(page, (Segel) => Segel.status());
  assert.equal(r.code, 'INSECURE_CONTEXT');
  const answered = await page.evaluate(
    () =>
      new Promise((resolve) => {
        window.addEventListener('message', (e) => {
          if (e.data?.kind === 'response' || e.data?.kind === 'hello-ack') {
            resolve(true);
          }
        });
        window.postMessage({ channel: 'segel.id/v1', kind: 'hello' }, '*');
        window.postMessage({ channel: 'segel.id/v1', kind: 'request', id: 'i', action: 'status' }, '*');
        setTimeout(() => resolve(false), 1500);
      }),
  );
  assert.equal(answered, false);
  await page.close();
});

test('a page calling the daemon directly gets nothing', async () => {
  const page = await stack.page('allowed');
  const r = await page.evaluate(async (url) => {
    const results = [];
    for (const init of [{}, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } }]) {
      try {
        const resp = await fetch(`${url}/v1/certificates`, init);
        results.push({ status: resp.status, body: await resp.text() });
      } catch (e) {
        results.push({ error: String(e) });
      }
    }
    try {
      const resp = await fetch(`${url}/v1/status`, { mode: 'no-cors' });
      results.push({ opaque: resp.type, body: await resp.text() });
    } catch (e) {
      results.push({ error: String(e) });
    }
    return results;
  }, stack.endpoint.url);
  assert.equal(r.length, 3);
  for (const x of r.slice(0, 2)) {
    assert.ok('error' in x, `the page read a daemon answer: ${JSON.stringify(x)}`);
  }
  assert.ok('error' in r[2] || (r[2].opaque === 'opaque' && r[2].body === ''), JSON.stringify(r[2]));
  // And the daemon itself refuses a browser page's request (Origin not the extension's).
  const direct = execFileSync('curl', ['-s', '--cacert', stack.endpoint.ca_cert, '-H', `Origin: ${stack.allowed.origin}`, '-H', `Authorization: Bearer ${stack.endpoint.credential}`, `${stack.endpoint.url}/v1/status`], {
    encoding: 'utf8',
  });
  assert.equal(JSON.parse(direct).code, 'ORIGIN_REJECTED');
  await page.close();
});

test('bad requests are refused with BAD_REQUEST before reaching the token', async () => {
  const page = await stack.page('allowed');
  const mark = stack.tokenCalls().length;
  const r1 = await call(page, (Segel, fp) => Segel.sign({ certificate: fp, digest: 'bm90IGEgaGFzaA==' }), fingerprint);
  assert.equal(r1.code, 'BAD_REQUEST');
  const r2 = await call(page, (Segel) => Segel.sign({ certificate: 'nope', digest: 'AAAA' }));
  assert.equal(r2.code, 'BAD_REQUEST');
  const r3 = await call(page, (Segel) => Segel.certificates({ purpose: 'steal' }));
  assert.equal(r3.code, 'BAD_REQUEST');
  assert.deepEqual(touchesSince(mark), [], 'the token was touched');
  await page.close();
});

test('the demo page buttons run status, certificates and sign', async () => {
  const page = await stack.page('allowed');
  await page.click('#btn-status');
  await page.waitForFunction(() => document.getElementById('out').textContent.includes('"available": true'));
  await page.click('#btn-certs');
  await page.waitForFunction(() => document.getElementById('cert').options.length > 0);
  await page.click('#btn-sign');
  await page.waitForFunction(() => /"algorithm": "(ecdsa|rsa-pkcs1)-sha256"/.test(document.getElementById('out').textContent));
  await page.close();
});


test('HTTPS to the daemon unusable (local CA not trusted): the same calls are relayed through the native host; the window speaks Bahasa Indonesia', async () => {
  const relay = await Stack.start({ trustCa: false, lang: 'id' });
  try {
    execFileSync(relay.segel, ['consent', 'grant', relay.allowed.origin], { env: relay.env, stdio: 'ignore' });
    const page = await relay.page('allowed');
    const fp = createHash('sha256').update(relay.certDer).digest('hex');
    const data = randomBytes(50);
    const win = relay.waitWindow();
    const pending = call(page, signDigest, { certificate: fp, digest: createHash('sha256').update(data).digest('base64'), name: 'relay.pdf' });
    pending.catch(() => undefined); // reported by the await below, not as unhandled
    const w = await win;
    await w.waitForSelector('#pin-block:not([hidden])');
    assert.equal(await w.textContent('#approve'), 'Izinkan');
    assert.equal(await w.textContent('label[for=pin]'), 'PIN token');
    await w.fill('#pin', PIN);
    await w.click('#approve');
    const r = await pending;
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.ok(verify('sha256', data, relay.certPem, Buffer.from(r.value.signature, 'base64')));
    const asked = relay.nativeHostLog();
    assert.ok(asked.some((m) => m.type === 'request' && m.path === '/v1/sign' && m.method === 'POST'), JSON.stringify(asked));
    await page.close();
  } finally {
    await relay.stop();
  }
});
