// Unit tests of the background actions against a scripted daemon and window.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { certificates } from '../../src/background/actions/certificates';
import { sign } from '../../src/background/actions/sign';
import { status } from '../../src/background/actions/status';
import { SegelError } from '../../src/shared/errors';
import { CERT, TOKEN, ctx, fakeDaemon, fakeUi, refused } from './fakes';

const DIGEST = Buffer.alloc(32, 7).toString('base64');
const SIG = { certificate: CERT.fingerprint_sha256, hash: 'sha256', scheme: 'ecdsa', signature: 'MEUCIQ==' };

async function rejects(p: Promise<unknown>, code: string): Promise<SegelError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SegelError, `not a SegelError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('sign: consented site with a logged-in token signs at once, as the site, without a PIN or window', async () => {
  const d = fakeDaemon(() => ({ status: 200, body: SIG }));
  const w = fakeUi(null);
  const r = await sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST, digestAlgorithm: 'SHA-256' });
  assert.deepEqual(r, { signature: 'MEUCIQ==', algorithm: 'ecdsa-sha256', certificate: CERT.fingerprint_sha256 });
  assert.equal(d.seen.length, 1);
  assert.equal(d.seen[0].site, 'https://spse.lkpp.go.id');
  assert.equal(d.seen[0].body?.pin, undefined);
  assert.equal(w.shown.length, 0);
});

test('sign: the site origin comes from the context, never from the parameters', async () => {
  const d = fakeDaemon(() => ({ status: 200, body: SIG }));
  await sign(ctx(d.transport, fakeUi(null).ui, 'https://evil.example'), {
    certificate: CERT.fingerprint_sha256,
    digest: DIGEST,
    origin: 'https://spse.lkpp.go.id',
    site: 'https://spse.lkpp.go.id',
  }).catch(() => undefined);
  assert.equal(d.seen[0].site, 'https://evil.example');
  assert.equal(JSON.stringify(d.seen[0].body).includes('lkpp'), false);
});

test('sign: a site not in the policy → ORIGIN_NOT_ALLOWED, no window, no further call', async () => {
  const d = fakeDaemon(() => refused('SITE_NOT_ALLOWED'));
  const w = fakeUi({ remember: true, pin: '1234', finalTry: false });
  await rejects(sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST }), 'ORIGIN_NOT_ALLOWED');
  assert.equal(d.seen.length, 1);
  assert.equal(w.shown.length, 0);
});

function consentDaemon(signAnswer: (body: Record<string, unknown> | null, site: string | null) => { status: number; body: unknown }) {
  let granted = false;
  const d = fakeDaemon((req) => {
    if (req.path === '/v1/consent' && req.method === 'POST') {
      assert.equal(req.site, null, 'consent must be granted as the user');
      granted = true;
      return { status: 200, body: { origin: req.body?.origin, granted_at: 'now' } };
    }
    if (req.path === '/v1/certificates') {
      return { status: 200, body: { certificates: [CERT] } };
    }
    if (req.path === '/v1/tokens') {
      return { status: 200, body: { tokens: [TOKEN] } };
    }
    if (req.path === '/v1/sign') {
      if (req.site !== null && !granted) {
        return refused('CONSENT_REQUIRED');
      }
      return signAnswer(req.body, req.site);
    }
    return refused('NOT_FOUND', 404);
  });
  return { ...d, granted: () => granted };
}

test('sign: no consent → window with site, hash, certificate; remember grants consent, then signs as the site with the PIN', async () => {
  const d = consentDaemon((body) => {
    assert.equal(body?.pin, '1234');
    return { status: 200, body: SIG };
  });
  const w = fakeUi({ remember: true, pin: '1234', finalTry: false });
  const r = await sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST, documentName: 'bid.pdf' });
  assert.equal(r.signature, 'MEUCIQ==');
  assert.equal(w.shown.length, 1);
  const v = w.shown[0];
  assert.equal(v.site, 'https://spse.lkpp.go.id');
  assert.equal(v.needConsent, true);
  assert.equal(v.needPin, true);
  assert.equal(v.documentName, 'bid.pdf');
  assert.equal(v.digest, '07'.repeat(32));
  assert.equal(v.certificate?.subject, 'CN=Budi Santoso');
  assert.equal(d.granted(), true);
  const signs = d.seen.filter((s) => s.path === '/v1/sign');
  assert.equal(signs.length, 2);
  assert.equal(signs[1].site, 'https://spse.lkpp.go.id');
});

test('sign: approved once without "remember" → no consent stored, signed as the user', async () => {
  const d = consentDaemon((_b, site) => {
    assert.equal(site, null);
    return { status: 200, body: SIG };
  });
  const w = fakeUi({ remember: false, pin: '1234', finalTry: false });
  await sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST });
  assert.equal(d.granted(), false);
});

test('sign: cancel → USER_CANCELLED and the PIN-carrying call never happens', async () => {
  const d = consentDaemon(() => ({ status: 200, body: SIG }));
  await rejects(sign(ctx(d.transport, fakeUi(null).ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST }), 'USER_CANCELLED');
  assert.equal(d.seen.filter((s) => s.path === '/v1/sign').length, 1);
});

test('sign: wrong PIN → PIN_INCORRECT with the tries the token reports; exactly one attempt', async () => {
  const finalTry = { ...TOKEN, flags: { ...TOKEN.flags, pin_final_try: true, pin_count_low: true } };
  let attempts = 0;
  const d = fakeDaemon((req) => {
    if (req.path === '/v1/sign') {
      if (req.body?.pin === undefined) {
        return refused('PIN_REQUIRED', 401);
      }
      attempts += 1;
      return refused('PIN_INCORRECT', 401);
    }
    if (req.path === '/v1/certificates') {
      return { status: 200, body: { certificates: [CERT] } };
    }
    return { status: 200, body: { tokens: [attempts > 0 ? finalTry : TOKEN] } };
  });
  const w = fakeUi({ remember: false, pin: '0000', finalTry: false });
  const e = await rejects(sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST }), 'PIN_INCORRECT');
  assert.equal(e.details.retriesLeft, 1);
  assert.equal(e.details.countLow, true);
  assert.equal(attempts, 1);
  assert.equal(w.shown[0].needConsent, false);
});

test('sign: parameters are checked before the daemon is asked', async () => {
  const d = fakeDaemon(() => ({ status: 200, body: SIG }));
  const c = ctx(d.transport, fakeUi(null).ui);
  const fp = CERT.fingerprint_sha256;
  await rejects(sign(c, { certificate: fp }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: DIGEST, data: DIGEST }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: 'AAAA' }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: 'not base64!' }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: DIGEST, format: 'cms' }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: DIGEST, format: 'pdf' }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: fp, digest: DIGEST, digestAlgorithm: 'MD5' }), 'BAD_REQUEST');
  await rejects(sign(c, { certificate: 'x', digest: DIGEST }), 'BAD_REQUEST');
  await rejects(sign(c, 'sign it'), 'BAD_REQUEST');
  assert.equal(d.seen.length, 0);
});

test('sign: certificate as base64 DER is sent as its SHA-256 fingerprint; cms returns the SignedData', async () => {
  const long = Buffer.concat([Buffer.from('a certificate, DER'), Buffer.alloc(60, 1)]);
  const d2 = fakeDaemon((req) => ({ status: 200, body: { certificate: req.body?.certificate, hash: 'sha256', cms: 'MIAG' } }));
  const fp2 = (await import('node:crypto')).createHash('sha256').update(long).digest('hex');
  const r2 = await sign(ctx(d2.transport, fakeUi(null).ui), { certificate: long.toString('base64'), data: 'aGVsbG8=', format: 'cms', detached: true });
  assert.equal(d2.seen[0].body?.certificate, fp2);
  assert.equal(d2.seen[0].body?.detached, true);
  assert.deepEqual(r2, { signature: 'MIAG', algorithm: 'cms-sha256', certificate: fp2 });
});

test('certificates: consented site lists as the site; page format', async () => {
  const d = fakeDaemon(() => ({ status: 200, body: { certificates: [CERT] } }));
  const r = await certificates(ctx(d.transport, fakeUi(null).ui), { purpose: 'sign' });
  assert.equal(d.seen[0].path, '/v1/certificates?purpose=sign');
  assert.equal(d.seen[0].site, 'https://spse.lkpp.go.id');
  assert.deepEqual(r[0], {
    certificate: 'MIIB',
    fingerprint: CERT.fingerprint_sha256,
    subject: 'CN=Budi Santoso',
    issuer: 'CN=Test CA',
    notBefore: CERT.not_before,
    notAfter: CERT.not_after,
    validNow: true,
    keyType: 'EC P-256',
    usage: ['sign'],
    token: 'vendor',
  });
});

test('certificates: no consent → window without PIN; cancel → USER_CANCELLED; not allowed → ORIGIN_NOT_ALLOWED', async () => {
  const d = fakeDaemon((req) => (req.site !== null ? refused('CONSENT_REQUIRED') : { status: 200, body: { certificates: [CERT] } }));
  const w = fakeUi({ remember: false, finalTry: false });
  const r = await certificates(ctx(d.transport, w.ui), {});
  assert.equal(r.length, 1);
  assert.equal(w.shown[0].needPin, false);
  assert.equal(w.shown[0].operation, 'certificates');
  await rejects(certificates(ctx(d.transport, fakeUi(null).ui), {}), 'USER_CANCELLED');
  const n = fakeDaemon(() => refused('SITE_NOT_ALLOWED'));
  await rejects(certificates(ctx(n.transport, fakeUi(null).ui), {}), 'ORIGIN_NOT_ALLOWED');
});

test('status: allowed + consented → tokens; consent missing → allowed, no tokens; not allowed; daemon away', async () => {
  const ok = fakeDaemon((req) =>
    req.path === '/v1/status' ? { status: 200, body: { service: 'segel', version: '9.9.9', caller: req.site } } : { status: 200, body: { tokens: [TOKEN] } },
  );
  const s1 = await status(ctx(ok.transport, fakeUi(null).ui));
  assert.deepEqual(s1.agent, { available: true, version: '9.9.9', allowed: true, consented: true });
  assert.equal(s1.tokens?.[0].label, 'vendor');
  assert.equal(s1.tokens?.[0].pinPad, false);

  for (const [code, allowed] of [['CONSENT_REQUIRED', true], ['SITE_NOT_ALLOWED', false]] as const) {
    const d = fakeDaemon((req) => (req.site !== null ? refused(code) : { status: 200, body: { service: 'segel', version: '9.9.9' } }));
    const s = await status(ctx(d.transport, fakeUi(null).ui));
    assert.deepEqual(s.agent, { available: true, version: '9.9.9', allowed, consented: false });
    assert.equal(s.tokens, null);
    assert.equal(d.seen.some((x) => x.path === '/v1/tokens'), false);
  }
});

test('sign: PIN-pad token → window without a PIN field, the daemon is asked without a PIN', async () => {
  const pad = { ...TOKEN, flags: { ...TOKEN.flags, protected_authentication_path: true } };
  let pinSent: unknown = 'unset';
  const d = fakeDaemon((req) => {
    if (req.path === '/v1/certificates') {
      return { status: 200, body: { certificates: [CERT] } };
    }
    if (req.path === '/v1/tokens') {
      return { status: 200, body: { tokens: [pad] } };
    }
    if (req.site !== null && req.body?.final_try === undefined && pinSent === 'unset') {
      pinSent = 'first';
      return refused('PIN_REQUIRED', 422);
    }
    pinSent = req.body?.pin;
    return { status: 200, body: SIG };
  });
  const w = fakeUi({ remember: false, finalTry: false });
  await sign(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST });
  assert.equal(w.shown[0].needPin, false);
  assert.equal(w.shown[0].token?.pinPad, true);
  assert.equal(pinSent, undefined);
});

test('sign: the final PIN try is used only when the user ticked it in the window', async () => {
  const last = { ...TOKEN, flags: { ...TOKEN.flags, pin_final_try: true } };
  const bodies: (Record<string, unknown> | null)[] = [];
  const d = fakeDaemon((req) => {
    if (req.path === '/v1/certificates') {
      return { status: 200, body: { certificates: [CERT] } };
    }
    if (req.path === '/v1/tokens') {
      return { status: 200, body: { tokens: [last] } };
    }
    bodies.push(req.body);
    if (req.body?.pin === undefined) {
      return refused('PIN_REQUIRED', 422);
    }
    return req.body.final_try === true ? { status: 200, body: SIG } : refused('PIN_FINAL_TRY', 422);
  });
  const ticked = fakeUi({ remember: false, pin: '1234', finalTry: true });
  await sign(ctx(d.transport, ticked.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST });
  assert.equal(ticked.shown[0].token?.pinFinalTry, true);
  assert.equal(bodies[1]?.final_try, true);
  const unticked = fakeUi({ remember: false, pin: '1234', finalTry: false });
  await rejects(sign(ctx(d.transport, unticked.ui), { certificate: CERT.fingerprint_sha256, digest: DIGEST }), 'PIN_FINAL_TRY');
  assert.equal(bodies[3]?.final_try, undefined);
});
