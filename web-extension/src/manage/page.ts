// DOM helpers of the enrolment and PIN pages.

import { NATIVE_HOST, createTransport } from '../background/transport';
import type { Transport } from '../background/transport';
import { toWireError } from '../shared/errors';
import { $, errorText, t } from '../shared/ui';
import { FormProblems, presentTokens } from './admin';

/** The daemon, reached as the user (no site origin), like Segel's window. */
export function pageTransport(): Transport {
  return createTransport({
    sendNative: (message) => chrome.runtime.sendNativeMessage(NATIVE_HOST, message as object),
    fetch: (url, init) => fetch(url, init),
  });
}

/** Offer the tokens present now in `#token`; says so when there is none. */
export async function fillTokens(tr: Transport, selected?: string): Promise<void> {
  const select = $<HTMLSelectElement>('token');
  const tokens = await presentTokens(tr);
  select.replaceChildren(
    ...tokens.map((tok) => {
      const o = document.createElement('option');
      o.value = tok.label;
      o.textContent = `${tok.label} — ${tok.manufacturer} ${tok.model} (${tok.serial})`;
      return o;
    }),
  );
  if (selected !== undefined && tokens.some((tok) => tok.label === selected)) {
    select.value = selected;
  }
  $('no-token').hidden = tokens.length > 0;
}

/** Clear the marks of an earlier try in `form`. */
export function clearProblems(form: HTMLElement): void {
  for (const el of form.querySelectorAll('.field-problem')) {
    el.remove();
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
  }
}

/**
 * Show an error: form problems next to their fields (`idOf` maps a field to its input's id),
 * anything else as text in `box`.
 */
export function showError(e: unknown, box: HTMLElement, idOf: (field: string) => string = (f) => f): void {
  if (e instanceof FormProblems) {
    for (const p of e.problems) {
      const input = document.getElementById(idOf(p.field));
      if (input === null) {
        continue;
      }
      input.setAttribute('aria-invalid', 'true');
      const note = document.createElement('p');
      note.className = 'field-problem';
      note.textContent = t(p.key);
      input.insertAdjacentElement('afterend', note);
    }
    box.textContent = t('formHasProblems');
  } else {
    box.textContent = errorText(toWireError(e));
  }
  box.hidden = false;
}

/** Clear password inputs: PINs live no longer than their request. */
export function wipe(...ids: string[]): void {
  for (const id of ids) {
    $<HTMLInputElement>(id).value = '';
  }
}
