// Unit tests of the seal and open actions against a scripted daemon and window, and of the
// transport's streamed upload.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { open } from '../../src/background/actions/open';
import { seal } from '../../src/background/actions/seal';
import { createTransport } from '../../src/background/transport';
import { SegelError } from '../../src/shared/errors';
import type { PickedFile } from '../../src/shared/messages';
import { CERT, TOKEN, ctx, fakeDaemon, fakeUi, refused } from './fakes';
import type { Route, Saved, Seen } from './fakes';

const RECIPIENT = Buffer.from('committee certificate DER').toString('base64');
const BID: PickedFile = { id: 'a'.repeat(32), name: 'penawaran.pdf', bytes: 1234, sha256: '1'.repeat(64) };
const BID2: PickedFile = { id: 'b'.repeat(32), name: 'teknis.pdf', bytes: 99, sha256: '2'.repeat(64) };

const deleted = (seen: Seen[]) => seen.filter((s) => s.method === 'DELETE').map((s) => s.path);

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

/** A daemon that knows the certificate and token; `more` answers everything else. */
function bidDaemon(more: Route, site: 'ok' | 'consent' | 'refused' = 'ok') {
  return fakeDaemon((req: Seen) => {
    if (req.path.startsWith('/v1/certificates')) {
      if (req.site !== null && site === 'consent') {
        return refused('CONSENT_REQUIRED');
      }
      if (req.site !== null && site === 'refused') {
        return refused('SITE_NOT_ALLOWED');
      }
      return { status: 200, body: { certificates: [CERT] } };
    }
    if (req.path === '/v1/tokens') {
      return { status: 200, body: { tokens: [TOKEN] } };
    }
    if (req.method === 'DELETE' && req.path.startsWith('/v1/files/')) {
      return { status: 200, body: { id: req.path.slice(10), deleted: true } };
    }
    if (req.path === '/v1/consent') {
      return { status: 200, body: { origin: 'https://spse.lkpp.go.id', granted: true } };
    }
    return more(req);
  });
}

function sealed(req: Seen) {
  const f = [BID, BID2].find((b) => b.id === req.body?.file);
  assert.ok(f !== undefined, 'seal of an unknown file');
  return {
    status: 200,
    body: {
      id: f.id.replace(/./g, 'c'),
      name: `${f.name}.p7m`,
      bytes: f.bytes + 2000,
      report: { content_sha256: f.sha256, content_len: f.bytes, recipients: ['CN=Pokja 1'] },
    },
  };
}

test('seal: the window asks for files and the PIN; each file is sealed once, saved, reported by name, size, hash', async () => {
  const d = bidDaemon(sealed);
  const w = fakeUi({ remember: false, pin: '1234', finalTry: false, files: [BID, BID2] });
  const saved: Saved = [];
  const r = await seal(ctx(d.transport, w.ui, undefined, saved), {
    certificate: CERT.fingerprint_sha256,
    recipients: [RECIPIENT],
  });
  assert.deepEqual(r, [
    { file: 'penawaran.pdf', bytes: 1234, sha256: '1'.repeat(64), sealed: 'penawaran.pdf.p7m', sealedBytes: 3234, recipients: ['CN=Pokja 1'] },
    { file: 'teknis.pdf', bytes: 99, sha256: '2'.repeat(64), sealed: 'teknis.pdf.p7m', sealedBytes: 2099, recipients: ['CN=Pokja 1'] },
  ]);
  assert.equal(w.shown.length, 1);
  assert.equal(w.shown[0].operation, 'seal');
  assert.deepEqual(w.shown[0].pickFiles, { accept: '', multiple: true });
  assert.equal(w.shown[0].recipients, 1);
  assert.equal(w.shown[0].certificate?.subject, 'CN=Budi Santoso');
  const seals = d.seen.filter((s) => s.path === '/v1/seal');
  assert.equal(seals.length, 2);
  assert.equal(seals[0].site, null, 'sealing runs as the user who picked the files');
  assert.deepEqual(seals[0].body, {
    file: BID.id,
    certificate: CERT.fingerprint_sha256,
    recipients: [RECIPIENT],
    file_rules: true,
    pin: '1234',
  });
  assert.deepEqual(saved, [
    { id: 'c'.repeat(32), filename: 'penawaran.pdf.p7m' },
    { id: 'c'.repeat(32), filename: 'teknis.pdf.p7m' },
  ]);
  // The site was asked first, as the site (policy and consent), without a token call.
  assert.equal(d.seen[0].site, 'https://spse.lkpp.go.id');
  // The picked bids the daemon held are dropped afterwards.
  assert.deepEqual(deleted(d.seen), [`/v1/files/${BID.id}`, `/v1/files/${BID2.id}`]);
});

test('seal: a wrong PIN stops at the first file: PIN_INCORRECT with the retries, no second attempt', async () => {
  const d = bidDaemon((req) => (req.path === '/v1/seal' ? refused('PIN_INCORRECT', 401) : { status: 404, body: {} }));
  const w = fakeUi({ remember: false, pin: '0000', finalTry: false, files: [BID, BID2] });
  const e = await rejects(seal(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, recipients: [RECIPIENT] }), 'PIN_INCORRECT');
  assert.equal(e.details.retriesLeft, null);
  assert.equal(d.seen.filter((s) => s.path === '/v1/seal').length, 1);
  assert.deepEqual(deleted(d.seen), [`/v1/files/${BID.id}`, `/v1/files/${BID2.id}`], 'dropped after a failure too');
});

test('seal: a site outside the policy → ORIGIN_NOT_ALLOWED before any window', async () => {
  const d = bidDaemon(() => ({ status: 500, body: {} }), 'refused');
  const w = fakeUi({ remember: false, pin: '1', finalTry: false, files: [BID] });
  await rejects(seal(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, recipients: [RECIPIENT] }), 'ORIGIN_NOT_ALLOWED');
  assert.equal(w.shown.length, 0);
  assert.equal(d.seen.length, 1);
});

test('seal: cancel in the window → USER_CANCELLED, nothing sealed', async () => {
  const d = bidDaemon(sealed, 'consent');
  const w = fakeUi(null);
  await rejects(seal(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, recipients: [RECIPIENT] }), 'USER_CANCELLED');
  assert.equal(w.shown[0].needConsent, true);
  assert.equal(d.seen.some((s) => s.path === '/v1/seal'), false);
});

test('seal: remember grants consent as the user; no files picked → BAD_REQUEST', async () => {
  const d = bidDaemon(sealed, 'consent');
  await seal(ctx(d.transport, fakeUi({ remember: true, pin: '1', finalTry: false, files: [BID] }).ui), {
    certificate: CERT.fingerprint_sha256,
    recipients: [RECIPIENT],
  });
  const grant = d.seen.find((s) => s.path === '/v1/consent');
  assert.equal(grant?.site, null);
  await rejects(
    seal(ctx(d.transport, fakeUi({ remember: false, pin: '1', finalTry: false, files: [] }).ui), {
      certificate: CERT.fingerprint_sha256,
      recipients: [RECIPIENT],
    }),
    'BAD_REQUEST',
  );
});

test('seal: bad parameters are refused before the daemon is asked', async () => {
  const d = bidDaemon(sealed);
  const w = fakeUi(null);
  for (const p of [
    { certificate: CERT.fingerprint_sha256 },
    { certificate: CERT.fingerprint_sha256, recipients: [] },
    { certificate: CERT.fingerprint_sha256, recipients: ['not base64!'] },
    { certificate: CERT.fingerprint_sha256, recipients: [RECIPIENT], fileRules: 'no' },
    { certificate: 'xyz', recipients: [RECIPIENT] },
  ]) {
    await rejects(seal(ctx(d.transport, w.ui), p), 'BAD_REQUEST');
  }
  assert.equal(d.seen.length, 0);
});

test('seal: a picked file that is not a daemon file id → BAD_REQUEST, nothing sealed', async () => {
  const d = bidDaemon(sealed);
  const w = fakeUi({ remember: false, pin: '1', finalTry: false, files: [{ ...BID, id: '../etc/passwd' }] });
  await rejects(seal(ctx(d.transport, w.ui), { certificate: CERT.fingerprint_sha256, recipients: [RECIPIENT] }), 'BAD_REQUEST');
  assert.equal(d.seen.some((s) => s.path === '/v1/seal'), false);
});

function opening(states: string[], result: unknown, error: unknown = null): Route {
  let polls = 0;
  return (req) => {
    if (req.path === '/v1/open') {
      return { status: 202, body: { job: 'f'.repeat(32) } };
    }
    if (req.path === `/v1/jobs/${'f'.repeat(32)}`) {
      const state = states[Math.min(polls, states.length - 1)];
      polls += 1;
      return {
        status: 200,
        body: { id: 'f'.repeat(32), state, files_done: polls, files_total: 2, bytes_done: 0, bytes_total: 0, result: state === 'done' ? result : null, error: state === 'failed' ? error : null },
      };
    }
    return { status: 404, body: { code: 'NOT_FOUND', message: req.path } };
  };
}

const P7M: PickedFile = { id: 'd'.repeat(32), name: 'penawaran.pdf.p7m', bytes: 3234, sha256: '3'.repeat(64) };
const P7M2: PickedFile = { id: 'e'.repeat(32), name: 'rusak.p7m', bytes: 10, sha256: '4'.repeat(64) };

test('open: one job for all files with one PIN; polled to the end; opened bids saved; the report mapped', async () => {
  const result = {
    opened_by: { subject: 'CN=Pokja 1' },
    bids: [
      {
        file: '/var/lib/segel/held/x/penawaran.pdf.p7m',
        status: 'opened',
        vendor: 'CN=Budi Santoso',
        signature_valid: true,
        chain: { ok: true },
        signing_time: '2026-12-01T10:00:00Z',
        plaintext_sha256: '1'.repeat(64),
        size: 1234,
        error: null,
        error_code: null,
        download: '9'.repeat(32),
      },
      {
        file: '/var/lib/segel/held/y/rusak.p7m',
        status: 'failed',
        vendor: null,
        signature_valid: false,
        chain: null,
        signing_time: null,
        plaintext_sha256: null,
        size: null,
        error: 'the sealed file was altered',
        error_code: 'TAMPERED',
      },
    ],
  };
  const d = bidDaemon(opening(['running', 'running', 'done'], result));
  const w = fakeUi({ remember: false, pin: '1234', finalTry: false, files: [P7M, P7M2] });
  const saved: Saved = [];
  const r = await open(ctx(d.transport, w.ui, undefined, saved), { certificate: CERT.fingerprint_sha256 }, 1);
  assert.equal(w.shown[0].operation, 'open');
  assert.deepEqual(w.shown[0].pickFiles, { accept: '.p7m', multiple: true });
  const opens = d.seen.filter((s) => s.path === '/v1/open');
  assert.equal(opens.length, 1);
  assert.equal(opens[0].site, null);
  assert.deepEqual(opens[0].body, { files: [P7M.id, P7M2.id], certificate: CERT.fingerprint_sha256, pin: '1234' });
  assert.equal(d.seen.filter((s) => s.path.startsWith('/v1/jobs/')).length, 3);
  assert.deepEqual(deleted(d.seen), [`/v1/files/${P7M.id}`, `/v1/files/${P7M2.id}`]);
  assert.deepEqual(saved, [{ id: '9'.repeat(32), filename: 'penawaran.pdf' }]);
  assert.deepEqual(r.openedBy, { subject: 'CN=Pokja 1' });
  assert.deepEqual(r.bids[0], {
    file: 'penawaran.pdf.p7m',
    sealedSha256: '3'.repeat(64),
    status: 'opened',
    vendor: 'CN=Budi Santoso',
    signatureValid: true,
    chain: { ok: true },
    signingTime: '2026-12-01T10:00:00Z',
    sha256: '1'.repeat(64),
    size: 1234,
    saved: 'penawaran.pdf',
    error: null,
    errorCode: null,
    agentCode: null,
  });
  assert.equal(r.bids[1].file, 'rusak.p7m');
  assert.equal(r.bids[1].saved, null);
  assert.equal(r.bids[1].errorCode, 'BAD_REQUEST');
  assert.equal(r.bids[1].agentCode, 'TAMPERED');
});

test('open: a wrong PIN fails the job as a whole → PIN_INCORRECT, one open call, nothing saved', async () => {
  const d = bidDaemon(opening(['failed'], null, { code: 'PIN_INCORRECT', message: 'wrong PIN' }));
  const w = fakeUi({ remember: false, pin: '0000', finalTry: false, files: [P7M] });
  const saved: Saved = [];
  await rejects(open(ctx(d.transport, w.ui, undefined, saved), { certificate: CERT.fingerprint_sha256 }, 1), 'PIN_INCORRECT');
  assert.equal(d.seen.filter((s) => s.path === '/v1/open').length, 1);
  assert.deepEqual(saved, []);
});

test('open: refused at the start (PIN locked) → PIN_LOCKED; cancel → USER_CANCELLED', async () => {
  const d = bidDaemon((req) => (req.path === '/v1/open' ? refused('PIN_LOCKED', 401) : { status: 404, body: {} }));
  await rejects(
    open(ctx(d.transport, fakeUi({ remember: false, pin: '1', finalTry: false, files: [P7M] }).ui), { certificate: CERT.fingerprint_sha256 }, 1),
    'PIN_LOCKED',
  );
  await rejects(open(ctx(d.transport, fakeUi(null).ui), { certificate: CERT.fingerprint_sha256 }, 1), 'USER_CANCELLED');
  assert.equal(d.seen.filter((s) => s.path === '/v1/open').length, 1);
});

test('transport.upload streams the Blob as the body with the credential, as the user; the relay path refuses', async () => {
  let seenBody: unknown = null;
  let seenHeaders: Record<string, string> = {};
  let seenUrl = '';
  const blob = new Blob([new Uint8Array(3000).fill(7)]);
  const t = createTransport({
    sendNative: async () => ({ url: 'https://127.0.0.1:24842', credential: 'c0ffee' }),
    fetch: async (url, init) => {
      seenUrl = url;
      seenBody = init.body;
      seenHeaders = init.headers as Record<string, string>;
      return new Response(JSON.stringify({ id: 'a'.repeat(32), name: 'a b.pdf', bytes: 3000, sha256: '5'.repeat(64) }), { status: 201 });
    },
  });
  const h = await t.upload('a b.pdf', blob);
  assert.equal(seenBody, blob, 'the Blob itself is the body (the browser streams it)');
  assert.equal(seenUrl, 'https://127.0.0.1:24842/v1/files?name=a%20b.pdf');
  assert.equal(seenHeaders['Content-Type'], 'application/octet-stream');
  assert.equal(seenHeaders.Authorization, 'Bearer c0ffee');
  assert.equal(seenHeaders['X-Segel-Site-Origin'], undefined);
  assert.equal(h.sha256, '5'.repeat(64));
  const req = await t.fileRequest('a'.repeat(32));
  assert.equal(req.url, `https://127.0.0.1:24842/v1/files/${'a'.repeat(32)}`);
  assert.equal(req.headers.Authorization, 'Bearer c0ffee');

  const big = createTransport({
    sendNative: async () => ({ url: 'https://127.0.0.1:24842', credential: 'c0ffee' }),
    fetch: async () => new Response(JSON.stringify({ code: 'PAYLOAD_TOO_LARGE', message: 'too large' }), { status: 413 }),
  });
  const e = await rejects(big.upload('x', blob), 'BAD_REQUEST');
  assert.equal(e.details.agentCode, 'PAYLOAD_TOO_LARGE');
});
