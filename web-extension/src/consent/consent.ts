// Segel's window: shows what the site asks, takes the PIN (sent to the background, which
// sends it to the daemon only, never to the page) and the user's decision.

import { NATIVE_HOST, createTransport } from '../background/transport';
import { toWireError } from '../shared/errors';
import type { WireError } from '../shared/errors';
import type { ConsentView, PickedFile, WindowRequest } from '../shared/messages';
import { $, applyI18n, errorText, t } from '../shared/ui';

// seal/open: the files the user picks here are streamed to the daemon from this window (a
// `File` as the fetch body, never read into memory or passed through messages); the
// background gets the daemon's ids, names, sizes and SHA-256s only.
const transport = createTransport({
  sendNative: (message) => chrome.runtime.sendNativeMessage(NATIVE_HOST, message as object),
  fetch: (url, init) => fetch(url, init),
});
let picked: PickedFile[] = [];
let uploading: AbortController | null = null;

function sizeText(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`;
}

/** Stream the picked files to the daemon and list them (name, size, SHA-256). */
async function uploadPicked(files: FileList): Promise<void> {
  uploading?.abort();
  const ctl = new AbortController();
  uploading = ctl;
  picked = [];
  const list = $<HTMLTableElement>('file-list');
  list.replaceChildren();
  const status = $('files-status');
  status.textContent = t('filesUploading');
  status.hidden = false;
  $('error').hidden = true;
  $<HTMLButtonElement>('approve').disabled = true;
  try {
    const held: PickedFile[] = [];
    for (const f of Array.from(files)) {
      const h = await transport.upload(f.name, f, { signal: ctl.signal });
      held.push({ id: h.id, name: h.name, bytes: h.bytes, sha256: h.sha256 });
      const row = list.insertRow();
      row.insertCell().textContent = h.name;
      row.insertCell().textContent = sizeText(h.bytes);
      row.insertCell().textContent = h.sha256;
    }
    if (uploading === ctl) {
      picked = held;
      status.hidden = true;
    }
  } catch (e) {
    if (uploading === ctl) {
      status.hidden = true;
      const el = $('error');
      el.textContent = errorText(toWireError(e));
      el.hidden = false;
    }
  } finally {
    if (uploading === ctl) {
      uploading = null;
      $<HTMLButtonElement>('approve').disabled = false;
    }
  }
}

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

function render(v: ConsentView): void {
  applyI18n();
  $('site').textContent = v.site;
  $('operation').textContent =
    v.operation === 'sign'
      ? t(v.format === 'cms' ? 'operationSignCms' : 'operationSign')
      : v.operation === 'seal'
        ? t('operationSeal')
        : v.operation === 'open'
          ? t('operationOpen')
          : t('operationCertificates');
  if (v.pickFiles !== undefined) {
    show('files-block', true);
    const input = $<HTMLInputElement>('files');
    input.accept = v.pickFiles.accept;
    input.multiple = v.pickFiles.multiple;
    if (v.recipients !== undefined) {
      $('recipients').textContent = t('recipientsCount', String(v.recipients));
      show('recipients', true);
    }
  }
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
  show('pin-pad', v.operation !== 'certificates' && pinPad);
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
  $<HTMLInputElement>('files').addEventListener('change', () => {
    const files = $<HTMLInputElement>('files').files;
    if (files !== null && files.length > 0) {
      void uploadPicked(files);
    }
  });
  $('cancel').addEventListener('click', () => {
    uploading?.abort();
    // Files already streamed to the daemon for this request are dropped before answering.
    const held = picked;
    picked = [];
    void Promise.allSettled(held.map((f) => transport.call('DELETE', `/v1/files/${encodeURIComponent(f.id)}`)))
      .then(() => send({ window: 'decide', id, approve: false, remember: false }))
      .finally(() => window.close());
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
    if (view.pickFiles !== undefined && picked.length === 0) {
      const el = $('error');
      el.textContent = t('filesEmpty');
      el.hidden = false;
      return;
    }
    $<HTMLButtonElement>('approve').disabled = true;
    $<HTMLButtonElement>('cancel').disabled = true;
    $<HTMLInputElement>('files').disabled = true;
    const req: WindowRequest = {
      window: 'decide',
      id,
      approve: true,
      remember: $<HTMLInputElement>('remember').checked,
      pin: needsTypedPin ? pinInput.value : undefined,
      finalTry: $<HTMLInputElement>('final-try').checked,
      files: view.pickFiles !== undefined ? picked : undefined,
    };
    pinInput.value = '';
    void send(req).then(
      (r) => finished(r.ok === true ? null : ((r.error as WireError | undefined) ?? { code: 'INTERNAL', message: 'no answer' })),
      (e: unknown) => finished({ code: 'INTERNAL', message: String(e) }),
    );
  });
}

void main();
