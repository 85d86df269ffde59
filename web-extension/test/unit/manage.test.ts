// Unit tests of the enrolment and PIN pages' logic (src/manage/admin.ts) against a scripted
// daemon: what is checked before anything is sent, what is sent, and how answers come back.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { ApplicantForm } from '../../src/manage/admin';
import {
  FormProblems,
  applicantProblems,
  certificateField,
  changePin,
  emailOk,
  enroll,
  importCertificate,
  newPinProblems,
  presentTokens,
  unblockPin,
} from '../../src/manage/admin';
import { DaemonError } from '../../src/shared/errors';
import { TOKEN, fakeDaemon, refused } from './fakes';

const GOOD: ApplicantForm = {
  name: 'Budi Santoso',
  email: 'budi@maju-jaya.co.id',
  org: 'PT Maju Jaya',
  unit: 'Pengadaan',
  city: 'Kota Bandung',
  province: 'Jawa Barat',
  npwp: '01.234.567.8-901.000',
  nik: '3273012505800003',
};

const fields = (problems: { field: string }[]) => problems.map((p) => p.field).sort();

test('applicant: a complete form has no problems; optional NPWP and NIK may be empty', () => {
  assert.deepEqual(applicantProblems(GOOD), []);
  assert.deepEqual(applicantProblems({ ...GOOD, npwp: '', nik: '' }), []);
  assert.deepEqual(applicantProblems({ ...GOOD, npwp: '0123456789012345' }), [], '16-digit NPWP');
});

test('applicant: every problem at once, each on its field', () => {
  const p = applicantProblems({ ...GOOD, name: ' ', city: 'x'.repeat(65), email: 'budi@localhost', nik: '32730125058000', npwp: '01.234.567.8-901' });
  assert.deepEqual(fields(p), ['city', 'email', 'name', 'nik', 'npwp']);
  assert.equal(p.find((x) => x.field === 'city')?.key, 'problem_tooLong');
  assert.equal(p.find((x) => x.field === 'name')?.key, 'problem_empty');
});

test('email: what CAs accept', () => {
  for (const ok of ['budi@maju-jaya.co.id', 'a.b+c@x.id']) {
    assert.ok(emailOk(ok), ok);
  }
  for (const bad of ['', 'budi', '@x.id', 'budi@x', 'bu di@x.id', 'budi@-x.id', 'budi@x..id', 'bú@x.id', 'a"b@x.id', 'a@b@x.id']) {
    assert.ok(!emailOk(bad), bad);
  }
});

test('new PIN: given and repeated the same (its length is the daemon\'s [pin] rule)', () => {
  assert.deepEqual(newPinProblems('123456', '123456'), []);
  assert.deepEqual(newPinProblems('1234', '1234'), [], 'a short PIN goes to the daemon, which knows the rule');
  assert.deepEqual(fields(newPinProblems('', '')), ['new-pin']);
  assert.deepEqual(fields(newPinProblems('123456', '123457')), ['repeat-pin']);
});

test('enroll: a bad form is refused with its problems and nothing is sent', async () => {
  const d = fakeDaemon(() => ({ status: 500, body: {} }));
  await assert.rejects(
    enroll(d.transport, { token: 'vendor', key: 'rsa1024', purpose: 'sign', applicant: { ...GOOD, nik: '12' }, pin: '1234' }),
    (e: unknown) => e instanceof FormProblems && fields(e.problems).join() === 'key,nik',
  );
  assert.equal(d.seen.length, 0);
});

test('enroll: sends the trimmed form as the user (no site) and returns the request', async () => {
  const answer = { token: 'vendor', key_id: 'ab', key_label: 'Budi Santoso', public_key_sha256: '00', request: '-----BEGIN CERTIFICATE REQUEST-----', summary: 'S' };
  const d = fakeDaemon(() => ({ status: 200, body: answer }));
  const r = await enroll(d.transport, { token: 'vendor', key: 'p256', purpose: 'encrypt', applicant: { ...GOOD, name: ' Budi Santoso ', npwp: ' ' }, pin: '1234' });
  assert.deepEqual(r, answer);
  assert.equal(d.seen.length, 1);
  const [req] = d.seen;
  assert.equal(req.method, 'POST');
  assert.equal(req.path, '/v1/enroll');
  assert.equal(req.site, null, 'the pages speak for the user, never for a site');
  const body = req.body as { applicant: Record<string, unknown>; purpose: string; pin: string; key: string };
  assert.equal(body.applicant.name, 'Budi Santoso');
  assert.equal(body.applicant.npwp, undefined, 'an empty optional field is left out');
  assert.equal(body.applicant.nik, GOOD.nik);
  assert.equal(body.purpose, 'encrypt');
  assert.equal(body.key, 'p256');
  assert.equal(body.pin, '1234');
});

test('enroll: the daemon stays the authority: its refusal comes back with its code', async () => {
  const d = fakeDaemon(() => refused('MECHANISM_UNSUPPORTED', 400));
  await assert.rejects(
    enroll(d.transport, { token: 'vendor', key: 'rsa4096', purpose: 'sign', applicant: GOOD, pin: '1234' }),
    (e: unknown) => e instanceof DaemonError && e.agentCode === 'MECHANISM_UNSUPPORTED' && e.code === 'UNSUPPORTED',
  );
});

test('certificate file: PEM goes as text, DER as base64', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  assert.equal(certificateField(new TextEncoder().encode(pem)), pem);
  const der = new Uint8Array([0x30, 0x82, 0x01, 0xff, 0x00]);
  assert.equal(certificateField(der), Buffer.from(der).toString('base64'));
  const big = new Uint8Array(200_000).fill(0xa5);
  assert.equal(certificateField(big), Buffer.from(big).toString('base64'));
});

test('import: no file is a form problem; a file goes with the token and PIN', async () => {
  const d = fakeDaemon(() => ({ status: 200, body: { token: 'vendor', certificate: 'ff', subject: 'CN=Budi', key_id: 'ab', label: 'Budi', intermediates: [] } }));
  await assert.rejects(importCertificate(d.transport, 'vendor', new Uint8Array(), '1234'), FormProblems);
  assert.equal(d.seen.length, 0);
  const r = await importCertificate(d.transport, 'vendor', new Uint8Array([0x30, 0x03]), '1234');
  assert.equal(r.subject, 'CN=Budi');
  assert.deepEqual(d.seen[0].body, { token: 'vendor', certificate: 'MAM=', pin: '1234' });
});

test('PIN change and unblock: checked first, then sent; a wrong PIN keeps its code', async () => {
  const d = fakeDaemon((req) => (req.path === '/v1/pin/change' ? refused('PIN_INCORRECT', 403) : { status: 200, body: { token: 'vendor' } }));
  await assert.rejects(changePin(d.transport, 'vendor', '', '654321', '654321'), (e: unknown) => e instanceof FormProblems && e.problems[0].field === 'old-pin');
  await assert.rejects(changePin(d.transport, 'vendor', '1234', '654321', '654320'), FormProblems);
  assert.equal(d.seen.length, 0);
  await assert.rejects(changePin(d.transport, 'vendor', '9999', '654321', '654321'), (e: unknown) => e instanceof DaemonError && e.code === 'PIN_INCORRECT');
  assert.deepEqual(d.seen[0].body, { token: 'vendor', pin: '9999', new_pin: '654321' });
  await unblockPin(d.transport, 'vendor', '87654321', '654321', '654321');
  assert.deepEqual(d.seen[1], { method: 'POST', path: '/v1/pin/unblock', site: null, body: { token: 'vendor', so_pin: '87654321', new_pin: '654321' } });
  await assert.rejects(unblockPin(d.transport, 'vendor', '', '654321', '654321'), FormProblems);
});

test('tokens: only present tokens with a label are offered', async () => {
  const absent = { ...TOKEN, label: 'gone', flags: { ...TOKEN.flags, present: false } };
  const free = { ...TOKEN, label: '' };
  const d = fakeDaemon(() => ({ status: 200, body: { tokens: [TOKEN, absent, free] } }));
  assert.deepEqual((await presentTokens(d.transport)).map((t) => t.label), [TOKEN.label]);
});
