// The requesting site's origin, from the browser's `sender` — never from the message.

import { SegelError } from '../shared/errors';

/** The parts of `chrome.runtime.MessageSender` we read. */
export interface SenderLike {
  id?: string;
  origin?: string;
  url?: string;
  tab?: unknown;
  frameId?: number;
}

/** Is `origin` a secure context origin (https, or http on the loopback names)? */
export function isSecureOrigin(origin: string): boolean {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  if (u.origin !== origin) {
    return false;
  }
  if (u.protocol === 'https:') {
    return true;
  }
  return u.protocol === 'http:' && (u.hostname === 'localhost' || u.hostname === '127.0.0.1');
}

/**
 * The site origin of a message from our content script: the sender must be this extension's
 * content script in a tab's top frame, and the origin must be a secure context. Chromium gives
 * `sender.origin`; Firefox only `sender.url`.
 */
export function siteOrigin(sender: SenderLike, extensionId: string): string {
  if (sender.id !== extensionId || sender.tab === undefined) {
    throw new SegelError('ORIGIN_NOT_ALLOWED', 'the message did not come from a page');
  }
  if (sender.frameId !== undefined && sender.frameId !== 0) {
    throw new SegelError('ORIGIN_NOT_ALLOWED', 'Segel answers only the top frame of a page');
  }
  let origin = sender.origin;
  if (origin === undefined || origin === 'null') {
    if (sender.url === undefined) {
      throw new SegelError('ORIGIN_NOT_ALLOWED', 'the browser did not say which site sent the message');
    }
    try {
      origin = new URL(sender.url).origin;
    } catch {
      throw new SegelError('ORIGIN_NOT_ALLOWED', 'the sending page has no URL');
    }
  }
  if (!isSecureOrigin(origin)) {
    throw new SegelError('INSECURE_CONTEXT', `${origin} is not a secure context (https)`);
  }
  return origin;
}
