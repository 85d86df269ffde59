// The enrolment page: a key pair made on the token with its certificate request (PKCS#10) to
// take to the registration authority, then the issued certificate put onto the token.

import { $, applyI18n } from '../shared/ui';
import type { ApplicantForm } from './admin';
import { enroll, importCertificate } from './admin';
import { clearProblems, fillTokens, pageTransport, showError, wipe } from './page';

const tr = pageTransport();
const value = (id: string) => $<HTMLInputElement>(id).value;

function applicant(): ApplicantForm {
  return {
    name: value('name'),
    email: value('email'),
    org: value('org'),
    unit: value('unit'),
    city: value('city'),
    province: value('province'),
    npwp: value('npwp'),
    nik: value('nik'),
  };
}

/** The request as a file in the Downloads folder (the browser's download manager). */
async function saveRequest(pem: string, label: string): Promise<void> {
  const url = URL.createObjectURL(new Blob([pem], { type: 'application/pkcs10' }));
  const safe = label.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'segel';
  try {
    await chrome.downloads.download({ url, filename: `${safe}.csr`, conflictAction: 'uniquify', saveAs: false });
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}

async function main(): Promise<void> {
  applyI18n();
  const error = $('error');
  try {
    await fillTokens(tr);
  } catch (e) {
    showError(e, error);
  }
  let made: { pem: string; label: string } | null = null;

  const form = $<HTMLFormElement>('enroll-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearProblems(form);
    error.hidden = true;
    $('result').hidden = true;
    const button = $<HTMLButtonElement>('enroll');
    button.disabled = true;
    const pin = value('pin');
    wipe('pin');
    enroll(tr, {
      token: $<HTMLSelectElement>('token').value,
      key: $<HTMLSelectElement>('key').value,
      purpose: $<HTMLSelectElement>('purpose').value === 'encrypt' ? 'encrypt' : 'sign',
      applicant: applicant(),
      pin,
    })
      .then((r) => {
        made = { pem: r.request, label: r.key_label };
        $('summary').textContent = r.summary;
        $('request').textContent = r.request;
        $('result').hidden = false;
      })
      .catch((e: unknown) => showError(e, error))
      .finally(() => {
        button.disabled = false;
      });
  });

  $('save').addEventListener('click', () => {
    if (made !== null) {
      saveRequest(made.pem, made.label).catch((e: unknown) => showError(e, error));
    }
  });

  const importForm = $<HTMLFormElement>('import-form');
  importForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearProblems(importForm);
    const box = $('import-error');
    box.hidden = true;
    $('imported').hidden = true;
    const button = $<HTMLButtonElement>('import');
    button.disabled = true;
    const pin = value('import-pin');
    wipe('import-pin');
    const file = $<HTMLInputElement>('cert-file').files?.[0];
    (file === undefined ? Promise.resolve(new Uint8Array()) : file.arrayBuffer().then((b) => new Uint8Array(b)))
      .then((bytes) => importCertificate(tr, $<HTMLSelectElement>('token').value, bytes, pin))
      .then((r) => {
        const done = $('imported');
        done.textContent = chrome.i18n.getMessage('certImported', [r.subject, r.label]);
        done.hidden = false;
      })
      .catch((e: unknown) => showError(e, box))
      .finally(() => {
        button.disabled = false;
      });
  });
}

void main();
