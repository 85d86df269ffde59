// `Segel.sign({certificate, digest | data, digestAlgorithm, format, documentName})`.
//
// 1. The request is checked here (shapes, lengths) before the daemon sees it.
// 2. First try the daemon as the site, without a PIN. The gate answers without touching any
//    token when the site is not allowed (→ ORIGIN_NOT_ALLOWED) or has no remembered consent;
//    a site with consent whose token is still logged in (the daemon's login idle time, after
//    a PIN entered in Segel's window) is signed at once.
// 3. Otherwise Segel's window shows the site, operation, document name and hash, and the
//    certificate; the user enters the PIN (or uses the PIN pad) and decides. One attempt:
//    a wrong PIN settles the call with PIN_INCORRECT, never a second try.

import { DaemonError, SegelError } from '../../shared/errors';
import type { ConsentView } from '../../shared/messages';
import type { ActionContext } from '../context';
import { paramsObject } from '../context';
import type { DaemonSignResponse } from '../daemon-types';
import { grantConsent } from './consent';
import { certificateView, pinIncorrect } from './token-view';

export type HashName = 'sha256' | 'sha384' | 'sha512';

const HASH_LEN: Record<HashName, number> = { sha256: 32, sha384: 48, sha512: 64 };
const SUBTLE_NAME: Record<HashName, string> = { sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };

export interface SignParams {
  /** SHA-256 fingerprint (hex). */
  fingerprint: string;
  format: 'raw' | 'cms';
  hash: HashName;
  digest?: string;
  data?: string;
  detached: boolean;
  documentName?: string;
}

export interface SignResult {
  /** base64: the raw signature (RSA, or ECDSA as DER SEQUENCE {r, s}), or DER CMS SignedData. */
  signature: string;
  /** e.g. `ecdsa-sha256`, `rsa-pkcs1-sha256`, `cms-sha256`. */
  algorithm: string;
  /** The certificate's SHA-256 fingerprint. */
  certificate: string;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function base64Bytes(field: string, v: unknown): Uint8Array<ArrayBuffer> {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !B64.test(v)) {
    throw new SegelError('BAD_REQUEST', `${field} must be base64`);
  }
  const bin = atob(v);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) {
    out[i] = bin.charCodeAt(i);
  }
  return out;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function parseHash(v: unknown): HashName {
  if (v === undefined) {
    return 'sha256';
  }
  const norm = typeof v === 'string' ? v.toLowerCase().replace('-', '') : '';
  if (norm === 'sha256' || norm === 'sha384' || norm === 'sha512') {
    return norm;
  }
  throw new SegelError('BAD_REQUEST', "digestAlgorithm must be 'SHA-256', 'SHA-384' or 'SHA-512'");
}

/** The certificate as a fingerprint: 64 hex digits, or base64 DER (hashed here). */
export async function certificateFingerprint(v: unknown): Promise<string> {
  if (typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v)) {
    return v.toLowerCase();
  }
  if (typeof v === 'string' && v.length > 64) {
    const der = base64Bytes('certificate', v);
    return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', der)));
  }
  throw new SegelError('BAD_REQUEST', 'certificate must be the SHA-256 fingerprint or the base64 DER from Segel.certificates()');
}

export async function parseSignParams(params: unknown): Promise<SignParams> {
  const p = paramsObject(params);
  const format = p.format ?? 'raw';
  if (format !== 'raw' && format !== 'cms') {
    throw new SegelError('BAD_REQUEST', "format must be 'raw' or 'cms'");
  }
  const hash = parseHash(p.digestAlgorithm);
  const hasDigest = p.digest !== undefined;
  const hasData = p.data !== undefined;
  if (hasDigest === hasData) {
    throw new SegelError('BAD_REQUEST', 'give exactly one of digest (base64 hash) or data (base64 document)');
  }
  if (hasDigest) {
    if (format === 'cms') {
      throw new SegelError('BAD_REQUEST', "format 'cms' signs the document: give data, not a digest");
    }
    const d = base64Bytes('digest', p.digest);
    if (d.length !== HASH_LEN[hash]) {
      throw new SegelError('BAD_REQUEST', `digest is ${d.length} bytes; ${SUBTLE_NAME[hash]} needs ${HASH_LEN[hash]}`);
    }
  } else {
    base64Bytes('data', p.data);
  }
  const name = p.documentName;
  if (name !== undefined && (typeof name !== 'string' || name.length > 200)) {
    throw new SegelError('BAD_REQUEST', 'documentName must be a string of at most 200 characters');
  }
  return {
    fingerprint: await certificateFingerprint(p.certificate),
    format,
    hash,
    digest: hasDigest ? (p.digest as string) : undefined,
    data: hasData ? (p.data as string) : undefined,
    detached: p.detached === true,
    documentName: name,
  };
}

function daemonBody(s: SignParams, pin?: string, finalTry = false): Record<string, unknown> {
  const body: Record<string, unknown> = { certificate: s.fingerprint, hash: s.hash, format: s.format };
  if (s.digest !== undefined) {
    body.digest = s.digest;
  } else {
    body.data = s.data;
  }
  if (s.format === 'cms') {
    body.detached = s.detached;
  }
  if (pin !== undefined && pin !== '') {
    body.pin = pin;
  }
  if (finalTry) {
    body.final_try = true;
  }
  return body;
}

function result(s: SignParams, r: DaemonSignResponse): SignResult {
  if (s.format === 'cms') {
    if (r.cms === undefined) {
      throw new SegelError('INTERNAL', 'the daemon answered without the CMS signature');
    }
    return { signature: r.cms, algorithm: `cms-${r.hash}`, certificate: r.certificate };
  }
  if (r.signature === undefined || r.scheme === undefined) {
    throw new SegelError('INTERNAL', 'the daemon answered without a signature');
  }
  return { signature: r.signature, algorithm: `${r.scheme}-${r.hash}`, certificate: r.certificate };
}

/** What the window shows: the document hash (hex), the certificate, the token's PIN state. */
async function windowView(
  ctx: ActionContext,
  s: SignParams,
  needConsent: boolean,
): Promise<Omit<ConsentView, 'id'>> {
  // Asked as the user (no site origin): these details go only to Segel's own window.
  const { certificate, token, needPin } = await certificateView(ctx, s.fingerprint);
  const digest =
    s.digest !== undefined
      ? hex(base64Bytes('digest', s.digest))
      : hex(new Uint8Array(await crypto.subtle.digest(SUBTLE_NAME[s.hash], base64Bytes('data', s.data))));
  return {
    site: ctx.site,
    operation: 'sign',
    needConsent,
    needPin,
    documentName: s.documentName,
    digest,
    digestAlgorithm: SUBTLE_NAME[s.hash],
    format: s.format,
    certificate,
    token,
  };
}

export async function sign(ctx: ActionContext, params: unknown): Promise<SignResult> {
  const s = await parseSignParams(params);
  let needConsent: boolean;
  try {
    const r = await ctx.transport.call<DaemonSignResponse>('POST', '/v1/sign', { site: ctx.site, body: daemonBody(s) });
    return result(s, r);
  } catch (e) {
    if (!(e instanceof DaemonError)) {
      throw e;
    }
    if (e.agentCode === 'CONSENT_REQUIRED') {
      needConsent = true;
    } else if (e.agentCode === 'PIN_REQUIRED') {
      needConsent = false;
    } else {
      throw e;
    }
  }
  const view = await windowView(ctx, s, needConsent);
  return ctx.ui.ask(view, async (d) => {
    let asSite = !needConsent;
    if (needConsent && d.remember) {
      await grantConsent(ctx);
      asSite = true;
    }
    try {
      // Without remembered consent, the user approved this one signature in Segel's window:
      // the extension asks as the user (no site origin).
      const r = await ctx.transport.call<DaemonSignResponse>('POST', '/v1/sign', {
        site: asSite ? ctx.site : undefined,
        body: daemonBody(s, d.pin, d.finalTry),
      });
      return result(s, r);
    } catch (e) {
      if (e instanceof DaemonError && e.agentCode === 'PIN_INCORRECT') {
        throw await pinIncorrect(ctx, s.fingerprint, e);
      }
      if (e instanceof DaemonError && e.agentCode === 'PIN_REQUIRED') {
        throw new SegelError('PIN_INVALID', 'enter the PIN');
      }
      throw e;
    }
  });
}
