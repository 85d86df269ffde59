// What `seal` and `open` share: the site check before the window and the picked files (the
// window's view of the certificate and the error after a wrong PIN are in `token-view.ts`).
//
// Large bids never pass through JSON messages: the user picks the files in Segel's window,
// which streams them to the daemon (`POST /v1/files`, a `File` as the fetch body); the
// background only sees the daemon's file ids, names, sizes and SHA-256s. Outputs (`.p7m`,
// opened bids) stay with the daemon and are saved by the browser's download manager, which
// streams `GET /v1/files/{id}` to the Downloads folder.

import { DaemonError, SegelError } from '../../shared/errors';
import type { PickedFile } from '../../shared/messages';
import type { ActionContext } from '../context';

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
