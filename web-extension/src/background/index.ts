// Background entry (service worker on Chromium, background script on Firefox): routes the
// content script's requests to one action each, Segel's window messages to the window
// manager, and event ports to the event forwarder. The site origin always comes from the
// browser's `sender`.

import { toWireError } from '../shared/errors';
import type { BackgroundRequest, BackgroundResponse, WindowRequest } from '../shared/messages';
import { EVENTS_PORT, isActionName } from '../shared/messages';
import { certificates } from './actions/certificates';
import { forwardEvents } from './actions/events';
import { open } from './actions/open';
import { seal } from './actions/seal';
import { sign } from './actions/sign';
import { status } from './actions/status';
import type { Action, ActionContext } from './context';
import { siteOrigin } from './origin';
import type { SenderLike } from './origin';
import { NATIVE_HOST, createTransport } from './transport';
import { createConsentUi } from './window';

const ACTIONS: Record<string, Action> = {
  status: (ctx) => status(ctx),
  certificates,
  sign,
  seal,
  open: (ctx, params) => open(ctx, params),
};

const transport = createTransport({
  sendNative: (message) => chrome.runtime.sendNativeMessage(NATIVE_HOST, message as object),
  fetch: (url, init) => fetch(url, init),
});

const ui = createConsentUi({
  async open(url) {
    const w = await chrome.windows.create({ url, type: 'popup', width: 520, height: 680, focused: true });
    return w?.id;
  },
  async close(windowId) {
    await chrome.windows.remove(windowId);
  },
  onRemoved(listener) {
    chrome.windows.onRemoved.addListener(listener);
  },
  pageUrl: (id) => chrome.runtime.getURL(`consent.html?id=${encodeURIComponent(id)}`),
  timeoutMs: 5 * 60 * 1000,
});

const extensionVersion = chrome.runtime.getManifest().version;

/** Sealed and opened bids go to the Downloads folder through the browser's download manager,
 * which streams them from the daemon (`GET /v1/files/{id}` with the credential header). */
async function save(id: string, filename: string): Promise<void> {
  const { url, headers } = await transport.fileRequest(id);
  await chrome.downloads.download({
    url,
    filename,
    conflictAction: 'uniquify',
    saveAs: false,
    headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
  });
}

function context(sender: SenderLike): ActionContext {
  return { site: siteOrigin(sender, chrome.runtime.id), transport, ui, extensionVersion, save };
}

function isWindowSender(sender: chrome.runtime.MessageSender): boolean {
  const page = chrome.runtime.getURL('consent.html');
  return sender.id === chrome.runtime.id && typeof sender.url === 'string' && sender.url.startsWith(page);
}

async function dispatch(message: unknown, sender: chrome.runtime.MessageSender): Promise<BackgroundResponse> {
  try {
    const req = message as BackgroundRequest;
    if (typeof message !== 'object' || message === null || !isActionName(req.action)) {
      return { ok: false, error: { code: 'BAD_REQUEST', message: 'unknown action' } };
    }
    const ctx = context(sender);
    return { ok: true, result: await ACTIONS[req.action](ctx, req.params) };
  } catch (e) {
    return { ok: false, error: toWireError(e) };
  }
}

chrome.runtime.onMessage.addListener((message: unknown, sender, sendResponse) => {
  if (typeof message === 'object' && message !== null && 'window' in message) {
    if (!isWindowSender(sender)) {
      return false;
    }
    ui.handle(message as WindowRequest).then(sendResponse, (e: unknown) =>
      sendResponse({ ok: false, error: toWireError(e) }),
    );
    return true;
  }
  dispatch(message, sender).then(sendResponse, (e: unknown) => sendResponse({ ok: false, error: toWireError(e) }));
  return true;
});

// The toolbar button opens Segel's own pages (enrolment, then PIN through their menu).
chrome.action.onClicked.addListener(() => {
  void chrome.tabs.create({ url: chrome.runtime.getURL('enroll.html') });
});

chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== EVENTS_PORT || port.sender === undefined) {
    port.disconnect();
    return;
  }
  let ctx: ActionContext;
  try {
    ctx = context(port.sender);
  } catch (e) {
    port.postMessage({ event: 'error', data: toWireError(e) });
    port.disconnect();
    return;
  }
  const abort = new AbortController();
  port.onDisconnect.addListener(() => abort.abort());
  void forwardEvents(ctx, (e) => port.postMessage(e), abort.signal);
});
