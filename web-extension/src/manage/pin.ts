// The PIN page: what the token says about its PIN, changing it, and unblocking it with the
// SO PIN (or the card's PUK).

import { $, applyI18n, t } from '../shared/ui';
import type { PinStatus } from './admin';
import { changePin, pinStatus, unblockPin } from './admin';
import { clearProblems, fillTokens, pageTransport, showError, wipe } from './page';

const tr = pageTransport();
const value = (id: string) => $<HTMLInputElement>(id).value;
const token = () => $<HTMLSelectElement>('token').value;

function stateText(s: PinStatus): string {
  if (!s.initialized) {
    return t('pinStateUninitialized');
  }
  if (s.locked) {
    return t('pinLocked');
  }
  if (s.final_try) {
    return t('retriesFinal');
  }
  if (s.count_low) {
    return t('retriesLow');
  }
  return s.pin_pad ? t('pinStatePinPad') : t('pinStateOk');
}

async function showStatus(): Promise<void> {
  const error = $('error');
  error.hidden = true;
  $('status').hidden = true;
  if (token() === '') {
    return;
  }
  try {
    const s = await pinStatus(tr, token());
    $('state').textContent = stateText(s);
    $('serial').textContent = s.serial;
    $('status').hidden = false;
  } catch (e) {
    showError(e, error);
  }
}

/** Run a PIN form: clear the old marks, call, show the outcome, wipe every PIN field. */
function pinForm(
  formId: string,
  fields: string[],
  okId: string,
  errorId: string,
  call: (v: string[]) => Promise<PinStatus>,
  idOf: (field: string) => string,
): void {
  const form = $<HTMLFormElement>(formId);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearProblems(form);
    const box = $(errorId);
    box.hidden = true;
    $(okId).hidden = true;
    const values = fields.map(value);
    wipe(...fields);
    const button = form.querySelector('button');
    if (button !== null) {
      button.disabled = true;
    }
    call(values)
      .then(() => {
        $(okId).hidden = false;
      })
      .catch((e: unknown) => showError(e, box, idOf))
      .finally(() => {
        if (button !== null) {
          button.disabled = false;
        }
        void showStatus();
      });
  });
}

async function main(): Promise<void> {
  applyI18n();
  try {
    await fillTokens(tr, new URLSearchParams(location.search).get('token') ?? undefined);
  } catch (e) {
    showError(e, $('error'));
  }
  $('token').addEventListener('change', () => void showStatus());
  await showStatus();
  pinForm('change-form', ['old-pin', 'new-pin', 'repeat-pin'], 'changed', 'change-error', ([o, n, r]) => changePin(tr, token(), o, n, r), (f) => f);
  pinForm(
    'unblock-form',
    ['so-pin', 'unblock-new-pin', 'unblock-repeat-pin'],
    'unblocked',
    'unblock-error',
    ([so, n, r]) => unblockPin(tr, token(), so, n, r),
    (f) => (f === 'so-pin' ? f : `unblock-${f}`),
  );
}

void main();
