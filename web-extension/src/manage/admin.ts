// The enrolment and PIN pages' work, apart from the DOM: the form checks (a first pass; the
// daemon checks again and is the authority) and the daemon calls. Pages call the daemon as
// the user (no site origin), like Segel's window: sites never reach these endpoints.

import { SegelError } from '../shared/errors';
import type { DaemonToken } from '../background/daemon-types';
import type { Transport } from '../background/transport';

export const KEY_TYPES = ['rsa2048', 'rsa3072', 'rsa4096', 'p256', 'p384'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export interface ApplicantForm {
  name: string;
  email: string;
  org: string;
  unit: string;
  city: string;
  province: string;
  /** Optional: empty means not given. */
  npwp: string;
  nik: string;
}

export interface EnrollForm {
  token: string;
  key: string;
  purpose: 'sign' | 'encrypt';
  applicant: ApplicantForm;
  pin: string;
}

/** A form problem: the field and the message key that explains it (`problem_*`). */
export interface Problem {
  field: string;
  key: string;
}

const REQUIRED = ['name', 'org', 'unit', 'city', 'province'] as const;

/** `local@domain.tld` in ASCII, as CAs accept it: no spaces or `"(),:;<>[\]` before the @, and
 * a domain of letter/digit/hyphen labels. */
export function emailOk(email: string): boolean {
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
  return (
    at > 0 &&
    local.length <= 64 &&
    /^[\x21-\x7e]+$/.test(local) &&
    !/["(),:;<>[\\\]@]/.test(local) &&
    domain.split('.').length >= 2 &&
    domain.split('.').every((l) => label.test(l))
  );
}

/** The applicant's data as the daemon checks it (agent/src/enroll.rs), all problems at once. */
export function applicantProblems(a: ApplicantForm): Problem[] {
  const out: Problem[] = [];
  for (const f of REQUIRED) {
    const v = a[f].trim();
    if (v === '') {
      out.push({ field: f, key: 'problem_empty' });
    } else if ([...v].length > 64) {
      out.push({ field: f, key: 'problem_tooLong' });
    }
  }
  if (!emailOk(a.email.trim())) {
    out.push({ field: 'email', key: 'problem_email' });
  }
  const nik = a.nik.replace(/\s/g, '');
  if (nik !== '' && !/^\d{16}$/.test(nik)) {
    out.push({ field: 'nik', key: 'problem_nik' });
  }
  const npwp = a.npwp.trim();
  if (npwp !== '') {
    const digits = npwp.replace(/\D/g, '').length;
    if (!/^[\d.\- ]+$/.test(npwp) || (digits !== 15 && digits !== 16)) {
      out.push({ field: 'npwp', key: 'problem_npwp' });
    }
  }
  return out;
}

/** A new PIN and its repetition. How long it must be is the daemon's `[pin] min_length`
 * (configurable), so the daemon says that (`PIN_INVALID` with the rule). */
export function newPinProblems(pin: string, repeat: string): Problem[] {
  if (pin === '') {
    return [{ field: 'new-pin', key: 'problem_pinEmpty' }];
  }
  if (pin !== repeat) {
    return [{ field: 'repeat-pin', key: 'problem_pinRepeat' }];
  }
  return [];
}

/** The problems as one BAD_REQUEST (for callers that do not mark fields). */
export class FormProblems extends SegelError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super('BAD_REQUEST', `form problems: ${problems.map((p) => `${p.field} (${p.key})`).join(', ')}`);
    this.problems = problems;
  }
}

export interface EnrollResult {
  token: string;
  key_id: string;
  key_label: string;
  public_key_sha256: string;
  /** The PKCS#10 request, PEM. */
  request: string;
  /** The printable summary for the registration authority. */
  summary: string;
}

export interface ImportResult {
  token: string;
  certificate: string;
  subject: string;
  key_id: string;
  label: string;
  intermediates: string[];
}

export interface PinStatus {
  token: string;
  serial: string;
  initialized: boolean;
  locked: boolean;
  final_try: boolean;
  count_low: boolean;
  to_be_changed: boolean;
  pin_pad: boolean;
  write_protected: boolean;
}

/** Tokens present now (the pages offer only those). */
export async function presentTokens(tr: Transport): Promise<DaemonToken[]> {
  const { tokens } = await tr.call<{ tokens: DaemonToken[] }>('GET', '/v1/tokens');
  return tokens.filter((t) => t.flags.present && t.label !== '');
}

/** Generate a key pair on the token and get its certificate request. */
export async function enroll(tr: Transport, form: EnrollForm): Promise<EnrollResult> {
  const problems = applicantProblems(form.applicant);
  if (!(KEY_TYPES as readonly string[]).includes(form.key)) {
    problems.push({ field: 'key', key: 'problem_key' });
  }
  if (problems.length > 0) {
    throw new FormProblems(problems);
  }
  const a = form.applicant;
  const opt = (v: string) => (v.trim() === '' ? undefined : v.trim());
  return tr.call<EnrollResult>('POST', '/v1/enroll', {
    body: {
      token: form.token,
      key: form.key,
      purpose: form.purpose,
      applicant: {
        name: a.name.trim(),
        email: a.email.trim(),
        org: a.org.trim(),
        unit: a.unit.trim(),
        city: a.city.trim(),
        province: a.province.trim(),
        npwp: opt(a.npwp),
        nik: opt(a.nik),
      },
      pin: form.pin === '' ? undefined : form.pin,
    },
  });
}

/** A certificate file's content as the daemon takes it: PEM text as is, anything else
 * (DER certificate or PKCS#7 chain) as base64. */
export function certificateField(bytes: Uint8Array): string {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 4096));
  if (head.includes('-----BEGIN')) {
    return new TextDecoder().decode(bytes);
  }
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Put the issued certificate (and its chain) on the token, next to its key. */
export async function importCertificate(tr: Transport, token: string, file: Uint8Array, pin: string): Promise<ImportResult> {
  if (file.length === 0) {
    throw new FormProblems([{ field: 'cert-file', key: 'problem_noFile' }]);
  }
  return tr.call<ImportResult>('POST', '/v1/certificates/import', {
    body: { token, certificate: certificateField(file), pin: pin === '' ? undefined : pin },
  });
}

export function pinStatus(tr: Transport, token: string): Promise<PinStatus> {
  return tr.call<PinStatus>('POST', '/v1/pin/status', { body: { token } });
}

/** Change the user PIN (C_SetPIN) after checking the new one and its repetition. */
export async function changePin(tr: Transport, token: string, pin: string, newPin: string, repeat: string): Promise<PinStatus> {
  const problems = newPinProblems(newPin, repeat);
  if (pin === '') {
    problems.unshift({ field: 'old-pin', key: 'problem_pinEmpty' });
  }
  if (problems.length > 0) {
    throw new FormProblems(problems);
  }
  return tr.call<PinStatus>('POST', '/v1/pin/change', { body: { token, pin, new_pin: newPin } });
}

/** Unblock with the SO PIN (or the card's PUK) and set a new user PIN. */
export async function unblockPin(tr: Transport, token: string, soPin: string, newPin: string, repeat: string): Promise<PinStatus> {
  const problems = newPinProblems(newPin, repeat);
  if (soPin === '') {
    problems.unshift({ field: 'so-pin', key: 'problem_pinEmpty' });
  }
  if (problems.length > 0) {
    throw new FormProblems(problems);
  }
  return tr.call<PinStatus>('POST', '/v1/pin/unblock', { body: { token, so_pin: soPin, new_pin: newPin } });
}
