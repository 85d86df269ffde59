// Segel's window: shows what the site asks, takes the PIN (sent to the background, which
// sends it to the daemon only, never to the page) and the user's decision.

import type { WireError } from '../shared/errors';
import type { ConsentView, WindowRequest } from '../shared/messages';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) {
    throw new Error(`consent.html lacks #${id}`);
  }
  return el as T;
};

const t = (key: string, subs?: string | string[]): string => chrome.i18n.getMessage(key, subs) || key;

function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

function send(req: WindowRequest): Promise<Record<string, unknown>> {
  return chrome.runtime.sendMessage<WindowRequest, Record<string, unknown>>(req);
}

function localDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString(chrome.i18n.getUILanguage());
}

function errorText(e: WireError): string {
  const base = t(`error_${e.code}`) !== `error_${e.code}` ? t(`error_${e.code}`) : e.message;
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

function render(v: ConsentView): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n ?? '');
  }
  document.documentElement.lang = chrome.i18n.getUILanguage();
  $('site').textContent = v.site;
  $('operation').textContent = v.operation === 'sign' ? t(v.format === 'cms' ? 'operationSignCms' : 'operationSign') : t('operationCertificates');
  if (v.digest !== undefined) {
    show('document', true);
    $('doc-name').textContent = v.documentName ?? t('documentUnnamed');
    $('digest-label').textContent = t('documentHash', v.digestAlgorithm ?? '');
    $('digest').textContent = v.digest;
  }
  if (v.certificate !== undefined) {
    show('certificate', true);
    $('cert-subject').textContent = v.certificate.subject;
    $('cert-issuer').textContent = v.certificate.issuer;
    $('cert-validity').textContent = `${localDate(v.certificate.notBefore)} – ${localDate(v.certificate.notAfter)}`;
    $('cert-token').textContent = v.certificate.token;
  }
  const pinPad = v.token?.pinPad === true;
  show('pin-block', v.needPin && !pinPad);
  show('pin-pad', v.operation === 'sign' && pinPad);
  if (v.token !== undefined) {
    const retries = $('retries');
    if (v.token.pinLocked) {
      retries.textContent = t('pinLocked');
      retries.hidden = false;
      $<HTMLButtonElement>('approve').disabled = true;
    } else if (v.token.pinFinalTry) {
      retries.textContent = t('retriesFinal');
      retries.hidden = false;
      show('final-try-block', true);
    } else if (v.token.pinCountLow) {
      retries.textContent = t('retriesLow');
      retries.hidden = false;
    }
  }
  show('remember-block', v.needConsent);
  if (v.needPin && !pinPad) {
    $('pin').focus();
  }
}

function finished(error: WireError | null): void {
  $<HTMLInputElement>('pin').value = '';
  if (error === null) {
    window.close();
    return;
  }
  // One attempt per request: show what happened, offer only Close.
  const el = $('error');
  el.textContent = errorText(error);
  el.hidden = false;
  $<HTMLInputElement>('pin').disabled = true;
  show('approve', false);
  show('cancel', false);
  show('remember-block', false);
  show('final-try-block', false);
  show('close', true);
  $('close').focus();
}

async function main(): Promise<void> {
  const id = new URLSearchParams(location.search).get('id') ?? '';
  const got = await send({ window: 'get', id });
  const view = got.view as ConsentView | undefined;
  if (view === undefined) {
    window.close();
    return;
  }
  render(view);
  // Keep the background alive while the user decides; close if the request is gone.
  // (After an error the window stays to show it; the request is settled by then.)
  const keepAlive = setInterval(() => {
    if (!$('close').hidden) {
      clearInterval(keepAlive);
      return;
    }
    void send({ window: 'ping', id }).then((r) => {
      if (r.gone === true) {
        window.close();
      }
    });
  }, 20_000);
  $('cancel').addEventListener('click', () => {
    void send({ window: 'decide', id, approve: false, remember: false }).finally(() => window.close());
  });
  $('close').addEventListener('click', () => window.close());
  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const pinInput = $<HTMLInputElement>('pin');
    const needsTypedPin = view.needPin && view.token?.pinPad !== true;
    if (needsTypedPin && pinInput.value === '') {
      const el = $('error');
      el.textContent = t('pinEmpty');
      el.hidden = false;
      return;
    }
    $<HTMLButtonElement>('approve').disabled = true;
    $<HTMLButtonElement>('cancel').disabled = true;
    const req: WindowRequest = {
      window: 'decide',
      id,
      approve: true,
      remember: $<HTMLInputElement>('remember').checked,
      pin: needsTypedPin ? pinInput.value : undefined,
      finalTry: $<HTMLInputElement>('final-try').checked,
    };
    pinInput.value = '';
    void send(req).then(
      (r) => finished(r.ok === true ? null : ((r.error as WireError | undefined) ?? { code: 'INTERNAL', message: 'no answer' })),
      (e: unknown) => finished({ code: 'INTERNAL', message: String(e) }),
    );
  });
}

void main();
