// What Segel's own pages (the consent window, the enrolment and PIN pages) share: element
// lookup, localised text, and the one way an error is worded for the user.

import type { WireError } from './errors';

/** The element with `id`; a page missing one is a bug, reported as such. */
export function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) {
    throw new Error(`${location.pathname} lacks #${id}`);
  }
  return el as T;
}

/** The message `key` in the browser's language (id or en), or the key itself if missing. */
export function t(key: string, subs?: string | string[]): string {
  return chrome.i18n.getMessage(key, subs) || key;
}

/** Fill every `data-i18n` element with its message and set the page's language. */
export function applyI18n(): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n ?? '');
  }
  document.documentElement.lang = chrome.i18n.getUILanguage();
}

/** Codes whose message says what to fix (which field, which mechanism, what the token said):
 * it follows the localised text. */
const WITH_DETAIL: ReadonlySet<string> = new Set(['BAD_REQUEST', 'TOKEN_ERROR', 'UNSUPPORTED', 'INTERNAL', 'PIN_INVALID', 'CERTIFICATE_NOT_FOUND', 'CERTIFICATE_INVALID']);

/** An error as the user reads it: the localised text of its code (else the daemon's message),
 * with the detail for codes in WITH_DETAIL and what the token said about the PIN tries left. */
export function errorText(e: WireError): string {
  const localised = t(`error_${e.code}`);
  let base = localised !== `error_${e.code}` ? localised : e.message;
  if (WITH_DETAIL.has(e.code) && e.message !== '' && base !== e.message) {
    base = `${base} (${e.message})`;
  }
  if (e.code === 'PIN_INCORRECT') {
    if (e.retriesLeft === 1) {
      return `${base} ${t('retriesFinal')}`;
    }
    if (e.retriesLeft === 0) {
      return `${base} ${t('pinLocked')}`;
    }
    return `${base} ${e.countLow === true ? t('retriesLow') : t('retriesUnknown')}`;
  }
  return base;
}
