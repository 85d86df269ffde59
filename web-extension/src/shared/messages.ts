// The messages between the page library, the content script, the background and Segel's
// window. Only plain JSON crosses these boundaries (binary data is base64).

import type { WireError } from './errors';

/** Marker on every window message of the page library ↔ content script protocol. */
export const PAGE_CHANNEL = 'segel.id/v1';

export const ACTIONS = ['status', 'certificates', 'sign', 'seal', 'open'] as const;
export type ActionName = (typeof ACTIONS)[number];

export function isActionName(a: unknown): a is ActionName {
  return typeof a === 'string' && (ACTIONS as readonly string[]).includes(a);
}

/** page → content script (window.postMessage). */
export interface PageRequest {
  channel: typeof PAGE_CHANNEL;
  kind: 'request';
  id: string;
  action: ActionName;
  params?: unknown;
}

/** page → content script: start or stop forwarding daemon events. */
export interface PageSubscribe {
  channel: typeof PAGE_CHANNEL;
  kind: 'subscribe';
}

/** content script → page. */
export type PageResponse =
  | { channel: typeof PAGE_CHANNEL; kind: 'response'; id: string; ok: true; result: unknown }
  | { channel: typeof PAGE_CHANNEL; kind: 'response'; id: string; ok: false; error: WireError };

/** content script → page: a daemon event. */
export interface PageEvent {
  channel: typeof PAGE_CHANNEL;
  kind: 'event';
  event: 'token' | 'progress';
  data: unknown;
}

/** content script → background (runtime.sendMessage). The site origin is NOT in here: the
 * background takes it from the browser's `sender`. */
export interface BackgroundRequest {
  action: ActionName;
  params?: unknown;
}

export type BackgroundResponse = { ok: true; result: unknown } | { ok: false; error: WireError };

/** Port name for the event stream (content script → background). */
export const EVENTS_PORT = 'segel-events';

/** Segel's window → background. */
export type WindowRequest =
  | { window: 'get'; id: string }
  /** Every 20 s while the window is open: keeps Chromium's service worker (and the pending
   * request it holds) alive past its 30 s idle limit. */
  | { window: 'ping'; id: string }
  | {
      window: 'decide';
      id: string;
      approve: boolean;
      remember: boolean;
      pin?: string;
      finalTry?: boolean;
      /** seal/open: the files the user picked in the window, already streamed to the daemon. */
      files?: PickedFile[];
    };

/** A file picked in Segel's window and held by the daemon (`POST /v1/files`). */
export interface PickedFile {
  id: string;
  name: string;
  bytes: number;
  sha256: string;
}

/** What Segel's window shows (background → window). */
export interface ConsentView {
  id: string;
  site: string;
  operation: 'certificates' | 'sign' | 'seal' | 'open';
  /** seal/open: the window asks for files (`accept` for the file input, e.g. `.p7m`). */
  pickFiles?: { accept: string; multiple: boolean };
  /** seal: how many committee certificates the bid is encrypted to. */
  recipients?: number;
  needConsent: boolean;
  needPin: boolean;
  documentName?: string;
  digest?: string;
  digestAlgorithm?: string;
  format?: string;
  certificate?: {
    subject: string;
    issuer: string;
    notBefore: string;
    notAfter: string;
    fingerprint: string;
    token: string;
  };
  token?: {
    label: string;
    pinPad: boolean;
    pinCountLow: boolean;
    pinFinalTry: boolean;
    pinLocked: boolean;
  };
  /** The last attempt's error, shown in the window (e.g. wrong PIN). */
  error?: WireError;
}

// What Segel.seal and Segel.open give the page (the background builds them, segel.js returns them).

export interface SealedBid {
  /** The bid as picked. */
  file: string;
  bytes: number;
  /** SHA-256 of the bid (hex). */
  sha256: string;
  /** The sealed file saved to the Downloads folder (`NAME.p7m`). */
  sealed: string;
  sealedBytes: number;
  /** The committee members it is encrypted to (subjects). */
  recipients: string[];
}

export interface OpenedBid {
  /** The sealed file as picked. */
  file: string;
  /** SHA-256 of the sealed file as picked (hex). */
  sealedSha256: string;
  /** opened, opened_with_warnings, failed. */
  status: string;
  /** The signer certificate's subject. */
  vendor: string | null;
  signatureValid: boolean;
  /** Signer certificate path and checks, as the daemon reports them. */
  chain: unknown;
  signingTime: string | null;
  /** SHA-256 of the opened bid (hex). */
  sha256: string | null;
  size: number | null;
  /** The opened bid's name in the Downloads folder (when opened). */
  saved: string | null;
  error: string | null;
  /** The page's stable code when this bid failed. */
  errorCode: string | null;
  /** The daemon's own code (e.g. TAMPERED, NOT_A_RECIPIENT). */
  agentCode: string | null;
}
