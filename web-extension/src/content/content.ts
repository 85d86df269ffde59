// Content script: the bridge between a page (segel.js) and the background.
// - Only messages from this very window (`event.source === window`), only in secure contexts.
// - Replies go to `event.origin`, the page's own origin.
// - The page's message never names the site: the background takes it from the browser.

import type { BackgroundResponse, PageEvent, PageResponse } from '../shared/messages';
import { EVENTS_PORT, PAGE_CHANNEL, isActionName } from '../shared/messages';

function post(message: PageResponse | PageEvent | { channel: typeof PAGE_CHANNEL; kind: 'hello-ack'; version: string }, origin: string): void {
  window.postMessage(message, origin);
}

let events: chrome.runtime.Port | null = null;

function subscribe(origin: string): void {
  if (events !== null) {
    return;
  }
  events = chrome.runtime.connect({ name: EVENTS_PORT });
  events.onMessage.addListener((m: { event: 'token' | 'progress' | 'error'; data: unknown }) => {
    if (m.event === 'error') {
      post({ channel: PAGE_CHANNEL, kind: 'event', event: 'token', data: { type: 'error', error: m.data } }, origin);
      return;
    }
    post({ channel: PAGE_CHANNEL, kind: 'event', event: m.event, data: m.data }, origin);
  });
  events.onDisconnect.addListener(() => {
    events = null;
  });
}

if (window.isSecureContext && window.top === window) {
  window.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== window) {
      return;
    }
    const m = event.data as Record<string, unknown> | null;
    if (typeof m !== 'object' || m === null || m.channel !== PAGE_CHANNEL) {
      return;
    }
    const origin = event.origin;
    if (m.kind === 'hello') {
      post({ channel: PAGE_CHANNEL, kind: 'hello-ack', version: chrome.runtime.getManifest().version }, origin);
      return;
    }
    if (m.kind === 'subscribe') {
      subscribe(origin);
      return;
    }
    if (m.kind !== 'request' || typeof m.id !== 'string' || !isActionName(m.action)) {
      return;
    }
    const id = m.id;
    // Only the action and its parameters go on; nothing else of the page's message.
    chrome.runtime.sendMessage({ action: m.action, params: m.params }).then(
      (r: BackgroundResponse | undefined) => {
        if (r === undefined) {
          post({ channel: PAGE_CHANNEL, kind: 'response', id, ok: false, error: { code: 'INTERNAL', message: 'no answer from the extension' } }, origin);
        } else if (r.ok) {
          post({ channel: PAGE_CHANNEL, kind: 'response', id, ok: true, result: r.result }, origin);
        } else {
          post({ channel: PAGE_CHANNEL, kind: 'response', id, ok: false, error: r.error }, origin);
        }
      },
      (e: unknown) => {
        post({ channel: PAGE_CHANNEL, kind: 'response', id, ok: false, error: { code: 'INTERNAL', message: `extension error: ${String(e)}` } }, origin);
      },
    );
  });
}
