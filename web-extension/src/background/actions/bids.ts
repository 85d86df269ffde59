// What `seal` and `open` share: the site check before the window, the window's view (the
// certificate and the token's PIN state), and the error after a wrong PIN.
//
// Large bids never pass through JSON messages: the user picks the files in Segel's window,
// which streams them to the daemon (`POST /v1/files`, a `File` as the fetch body); the
// background only sees the daemon's file ids, names, sizes and SHA-256s. Outputs (`.p7m`,
// opened bids) stay with the daemon and are saved by the browser's download manager, which
// streams `GET /v1/files/{id}` to the Downloads folder.

import { DaemonError, SegelError } from '../../shared/errors';
import type { ConsentView, PickedFile } from '../../shared/messages';
import type { ActionContext } from '../context';
import type { DaemonCertificate, DaemonToken } from '../daemon-types';

/** Ask the daemon as the site whether it may ask at all (the gate answers without touching a
 * token): ORIGIN_NOT_ALLOWED is thrown; the answer is whether the window must ask for consent. */
export async function siteNeedsConsent(ctx: ActionContext, purpose: 'sign' | 'decrypt'): Promise<boolean> {
  try {
    await ctx.transport.call('GET', `/v1/certificates?purpose=${purpose}`, { site: ctx.site });
    return false;
  } catch (e) {
    if (e instanceof DaemonError && e.agentCode === 'CONSENT_REQUIRED') {
      return true;
    }
    throw e;
  }
}

/** The window's view of the certificate and its token (asked as the user: only the window
 * sees these details). */
export async function certificateView(
  ctx: ActionContext,
  fingerprint: string,
): Promise<Pick<ConsentView, 'certificate' | 'token' | 'needPin'>> {
  const { certificates } = await ctx.transport.call<{ certificates: DaemonCertificate[] }>('GET', '/v1/certificates');
  const cert = certificates.find((c) => c.fingerprint_sha256 === fingerprint);
  if (cert === undefined) {
    throw new SegelError('CERTIFICATE_NOT_FOUND', 'no certificate with a private key matches the request');
  }
  const { tokens } = await ctx.transport.call<{ tokens: DaemonToken[] }>('GET', '/v1/tokens');
  const token = tokens.find((t) => t.serial === cert.token_serial && t.label === cert.token);
  return {
    needPin: token === undefined || !token.flags.protected_authentication_path,
    certificate: {
      subject: cert.subject,
      issuer: cert.issuer,
      notBefore: cert.not_before,
      notAfter: cert.not_after,
      fingerprint: cert.fingerprint_sha256,
      token: cert.token,
    },
    token:
      token === undefined
        ? undefined
        : {
            label: token.label,
            pinPad: token.flags.protected_authentication_path,
            pinCountLow: token.flags.pin_count_low,
            pinFinalTry: token.flags.pin_final_try,
            pinLocked: token.flags.pin_locked,
          },
  };
}

/** After a wrong PIN: what the token now says about the tries left. */
export async function pinIncorrect(ctx: ActionContext, fingerprint: string, e: DaemonError): Promise<SegelError> {
  let retriesLeft: number | null = null;
  let countLow = false;
  try {
    const { token } = await certificateView(ctx, fingerprint);
    if (token !== undefined) {
      countLow = token.pinCountLow;
      retriesLeft = token.pinLocked ? 0 : token.pinFinalTry ? 1 : null;
    }
  } catch {
    /* the flags are a courtesy; the error stands */
  }
  return new SegelError('PIN_INCORRECT', e.message, { retriesLeft, countLow, agentCode: e.agentCode });
}

const FILE_ID = /^[0-9a-f]{32}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** The files the window says it streamed to the daemon: at least one, well formed. */
export function pickedFiles(files: PickedFile[]): PickedFile[] {
  if (files.length === 0) {
    throw new SegelError('BAD_REQUEST', 'no file was picked');
  }
  for (const f of files) {
    if (
      typeof f !== 'object' ||
      f === null ||
      typeof f.id !== 'string' ||
      !FILE_ID.test(f.id) ||
      typeof f.name !== 'string' ||
      typeof f.bytes !== 'number' ||
      typeof f.sha256 !== 'string' ||
      !SHA256.test(f.sha256)
    ) {
      throw new SegelError('BAD_REQUEST', 'a picked file is malformed');
    }
  }
  return files;
}

/** The PIN fields of a seal/open body. */
export function pinFields(pin: string | undefined, finalTry: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (pin !== undefined && pin !== '') {
    body.pin = pin;
  }
  if (finalTry) {
    body.final_try = true;
  }
  return body;
}

/** Drop the picked files the daemon holds (best effort: the daemon empties its work folder
 * when it starts anyway). */
export async function dropPicked(ctx: ActionContext, files: PickedFile[]): Promise<void> {
  await Promise.allSettled(files.map((f) => ctx.transport.call('DELETE', `/v1/files/${encodeURIComponent(f.id)}`)));
}
