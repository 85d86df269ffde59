// segel.js — the page library a procurement site loads (an ES module; it also sets
// `window.Segel`). It talks to Segel's extension through window messages; the extension's
// content script relays to the background, which talks to the Segel daemon.
//
//   const s = await Segel.status();                 // {version, agent, tokens}
//   const certs = await Segel.certificates({purpose: 'sign'});
//   const {signature, algorithm} = await Segel.sign({certificate: certs[0].certificate,
//       digest: hashBytes, digestAlgorithm: 'SHA-256', format: 'raw', documentName: 'bid.pdf'});
//   const off = Segel.on('token', (e) => …);
//
// Every failure is an `Error` with `.code` from Segel.ERROR_CODES (see docs/architecture.md).

import { PAGE_ERROR_CODES, isPageCode } from '../shared/errors';
import type { PageErrorCode, WireError } from '../shared/errors';
import type { ActionName, OpenedBid, SealedBid } from '../shared/messages';
export type { OpenedBid, SealedBid } from '../shared/messages';
import { PAGE_CHANNEL } from '../shared/messages';

export type { PageErrorCode };
export const ERROR_CODES: readonly PageErrorCode[] = PAGE_ERROR_CODES;

export interface SegelErrorLike extends Error {
  code: PageErrorCode;
  retriesLeft?: number | null;
  countLow?: boolean;
}

type Bytes = string | ArrayBuffer | ArrayBufferView;

export interface SignOptions {
  /** Fingerprint (hex) or the base64 DER from `certificates()`. */
  certificate: string;
  /** The hash to sign (raw format). */
  digest?: Bytes;
  /** The document to sign (raw: hashed by Segel; cms: CMS SignedData over it). */
  data?: Bytes;
  digestAlgorithm?: 'SHA-256' | 'SHA-384' | 'SHA-512';
  format?: 'raw' | 'cms';
  /** For cms: leave the document out of the SignedData. */
  detached?: boolean;
  /** Shown to the user in Segel's window. */
  documentName?: string;
}

const HELLO_TIMEOUT_MS = 1500;
const TIMEOUTS: Record<ActionName, number> = {
  status: 15_000,
  certificates: 6 * 60_000,
  sign: 6 * 60_000,
  // The user picks files, the daemon seals/opens hundreds of MB: no page-side limit but an hour.
  seal: 60 * 60_000,
  open: 60 * 60_000,
};

function segelError(code: PageErrorCode, message: string, extra: Partial<WireError> = {}): SegelErrorLike {
  const e = new Error(message) as SegelErrorLike;
  e.name = 'SegelError';
  e.code = code;
  if (extra.retriesLeft !== undefined) {
    e.retriesLeft = extra.retriesLeft;
  }
  if (extra.countLow !== undefined) {
    e.countLow = extra.countLow;
  }
  return e;
}

function toBase64(v: Bytes): string {
  if (typeof v === 'string') {
    return v;
  }
  const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

const waiters = new Map<string, Waiter>();
const listeners: Record<'token' | 'progress', Set<(data: unknown) => void>> = {
  token: new Set(),
  progress: new Set(),
};
let hello: Promise<void> | null = null;
let helloAck: (() => void) | null = null;
let subscribed = false;

function onMessage(event: MessageEvent): void {
  if (event.source !== window || event.origin !== window.location.origin) {
    return;
  }
  const m = event.data as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null || m.channel !== PAGE_CHANNEL) {
    return;
  }
  if (m.kind === 'hello-ack') {
    helloAck?.();
    return;
  }
  if (m.kind === 'event' && (m.event === 'token' || m.event === 'progress')) {
    for (const fn of listeners[m.event]) {
      try {
        fn(m.data);
      } catch (e) {
        console.error('Segel event listener failed', e);
      }
    }
    return;
  }
  if (m.kind !== 'response' || typeof m.id !== 'string') {
    return;
  }
  const w = waiters.get(m.id);
  if (w === undefined) {
    return;
  }
  waiters.delete(m.id);
  clearTimeout(w.timer);
  if (m.ok === true) {
    w.resolve(m.result);
  } else {
    const err = (m.error ?? {}) as Partial<WireError>;
    const code = isPageCode(err.code) ? err.code : 'INTERNAL';
    w.reject(segelError(code, typeof err.message === 'string' ? err.message : 'Segel failed', err));
  }
}

function ensureListening(): void {
  if (typeof window === 'undefined') {
    throw segelError('EXTENSION_UNAVAILABLE', 'segel.js runs only in a browser page');
  }
  if (!window.isSecureContext) {
    throw segelError('INSECURE_CONTEXT', 'Segel answers only pages in a secure context (https)');
  }
  if (hello === null) {
    window.addEventListener('message', onMessage);
    hello = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        hello = null;
        window.removeEventListener('message', onMessage);
        reject(segelError('EXTENSION_UNAVAILABLE', "Segel's browser extension is not installed or not enabled for this site"));
      }, HELLO_TIMEOUT_MS);
      helloAck = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    window.postMessage({ channel: PAGE_CHANNEL, kind: 'hello' }, window.location.origin);
  }
}

async function request<T>(action: ActionName, params?: unknown): Promise<T> {
  ensureListening();
  await hello;
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters.delete(id);
      reject(segelError('TIMEOUT', `Segel did not answer ${action} in time`));
    }, TIMEOUTS[action]);
    waiters.set(id, { resolve: resolve, reject, timer });
    window.postMessage({ channel: PAGE_CHANNEL, kind: 'request', id, action, params }, window.location.origin);
  });
}

export interface Status {
  version: string;
  agent: { available: boolean; version: string | null; allowed: boolean; consented: boolean; error?: string };
  tokens: unknown[] | null;
}

export function status(): Promise<Status> {
  return request<Status>('status');
}

export function certificates(opts: { purpose?: 'sign' | 'decrypt' | 'any' } = {}): Promise<unknown[]> {
  return request<unknown[]>('certificates', { purpose: opts.purpose ?? 'any' });
}

export function sign(opts: SignOptions): Promise<{ signature: string; algorithm: string; certificate: string }> {
  const params: Record<string, unknown> = {
    certificate: opts.certificate,
    digestAlgorithm: opts.digestAlgorithm ?? 'SHA-256',
    format: opts.format ?? 'raw',
  };
  if (opts.digest !== undefined) {
    params.digest = toBase64(opts.digest);
  }
  if (opts.data !== undefined) {
    params.data = toBase64(opts.data);
  }
  if (opts.detached !== undefined) {
    params.detached = opts.detached;
  }
  if (opts.documentName !== undefined) {
    params.documentName = opts.documentName;
  }
  return request('sign', params);
}

export interface SealOptions {
  /** The vendor's signing certificate: SHA-256 fingerprint (hex) or base64 DER. */
  certificate: string;
  /** The committee's encryption certificates (base64 DER). */
  recipients: string[];
  /** Apply the procurement file rules (name length and characters); default true. */
  fileRules?: boolean;
}

/** Seal bids: the vendor picks the files in Segel's window; the sealed `.p7m` files are saved
 * to the Downloads folder. The page gets names, sizes and SHA-256s, never the files. */
export function seal(opts: SealOptions): Promise<SealedBid[]> {
  const params: Record<string, unknown> = { certificate: opts.certificate, recipients: opts.recipients };
  if (opts.fileRules !== undefined) {
    params.fileRules = opts.fileRules;
  }
  return request('seal', params);
}

/** Open sealed bids: the committee member picks the `.p7m` files in Segel's window and enters
 * the PIN once; progress comes as 'progress' events; the opened bids are saved to the Downloads
 * folder and the page gets the opening report. */
export function open(opts: { certificate: string }): Promise<{ openedBy: unknown; bids: OpenedBid[] }> {
  return request('open', { certificate: opts.certificate });
}

/** Listen to 'token' (inserted/removed) or 'progress' events; returns a function to stop. */
export function on(event: 'token' | 'progress', fn: (data: unknown) => void): () => void {
  if (event !== 'token' && event !== 'progress') {
    throw segelError('BAD_REQUEST', "event must be 'token' or 'progress'");
  }
  ensureListening();
  listeners[event].add(fn);
  if (!subscribed) {
    subscribed = true;
    void hello?.then(
      () => window.postMessage({ channel: PAGE_CHANNEL, kind: 'subscribe' }, window.location.origin),
      () => {
        subscribed = false;
      },
    );
  }
  return () => listeners[event].delete(fn);
}

export const Segel = { status, certificates, sign, seal, open, on, ERROR_CODES };
export default Segel;

if (typeof window !== 'undefined') {
  (window as unknown as { Segel: typeof Segel }).Segel = Segel;
}
