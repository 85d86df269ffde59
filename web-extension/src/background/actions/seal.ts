// `Segel.seal({certificate, recipients, fileRules})`: the vendor seals bids (sign with the
// vendor's key, then encrypt to the committee's certificates; CMS `.p7m`).
//
// 1. The request is checked here; the daemon is asked as the site whether it may ask at all
//    (ORIGIN_NOT_ALLOWED, or the window asks for consent).
// 2. Segel's window shows the site, the operation, the certificate and the number of committee
//    certificates; the vendor picks the bid files there and enters the PIN once. The window
//    streams the files to the daemon and shows their names, sizes and SHA-256s.
// 3. Each file is sealed by the daemon (`POST /v1/seal`, one PIN entry: a wrong PIN stops at the
//    first file, never a second try); each `.p7m` is saved to the Downloads folder by the
//    browser's download manager. The page gets names, sizes and hashes only.

import { DaemonError, SegelError } from '../../shared/errors';
import type { SealedBid, PickedFile } from '../../shared/messages';
import type { ActionContext } from '../context';
import { paramsObject } from '../context';
import { dropPicked, pickedFiles, pinFields, siteNeedsConsent } from './bids';
import { certificateView, pinIncorrect } from './token-view';
import { grantConsent } from './consent';
import { base64Bytes, certificateFingerprint } from './sign';

export interface SealParams {
  fingerprint: string;
  /** The committee's encryption certificates, DER base64. */
  recipients: string[];
  fileRules: boolean;
}

export const MAX_RECIPIENTS = 64;

export async function parseSealParams(params: unknown): Promise<SealParams> {
  const p = paramsObject(params);
  if (!Array.isArray(p.recipients) || p.recipients.length === 0 || p.recipients.length > MAX_RECIPIENTS) {
    throw new SegelError('BAD_REQUEST', `recipients must be 1 to ${MAX_RECIPIENTS} base64 DER certificates`);
  }
  for (const r of p.recipients) {
    if (base64Bytes('recipients', r).length === 0) {
      throw new SegelError('BAD_REQUEST', 'a recipient certificate is empty');
    }
  }
  if (p.fileRules !== undefined && typeof p.fileRules !== 'boolean') {
    throw new SegelError('BAD_REQUEST', 'fileRules must be true or false');
  }
  return {
    fingerprint: await certificateFingerprint(p.certificate),
    recipients: p.recipients as string[],
    fileRules: p.fileRules !== false,
  };
}

interface DaemonSealed {
  id: string;
  name: string;
  bytes: number;
  report: { content_sha256?: string; content_len?: number; recipients?: string[] } | null;
}

export async function seal(ctx: ActionContext, params: unknown): Promise<SealedBid[]> {
  const s = await parseSealParams(params);
  const needConsent = await siteNeedsConsent(ctx, 'sign');
  const cert = await certificateView(ctx, s.fingerprint);
  return ctx.ui.ask(
    {
      site: ctx.site,
      operation: 'seal',
      needConsent,
      ...cert,
      recipients: s.recipients.length,
      pickFiles: { accept: '', multiple: true },
    },
    async (d) => {
      const files = pickedFiles(d.files);
      if (needConsent && d.remember) {
        await grantConsent(ctx);
      }
      try {
        return await sealEach(ctx, s, files, d.pin, d.finalTry);
      } finally {
        await dropPicked(ctx, files);
      }
    },
  );
}

async function sealEach(
  ctx: ActionContext,
  s: SealParams,
  files: PickedFile[],
  pin: string | undefined,
  finalTry: boolean,
): Promise<SealedBid[]> {
  const out: SealedBid[] = [];
  for (const [i, f] of files.entries()) {
    let r: DaemonSealed;
    try {
      // The user approved in Segel's window and picked the files there: the extension asks
      // as the user (the files are held for the user, not the site).
      r = await ctx.transport.call<DaemonSealed>('POST', '/v1/seal', {
        body: {
          file: f.id,
          certificate: s.fingerprint,
          recipients: s.recipients,
          file_rules: s.fileRules,
          // One PIN entry: the token stays logged in for the next files.
          ...pinFields(pin, i === 0 && finalTry),
        },
      });
    } catch (e) {
      if (e instanceof DaemonError && e.agentCode === 'PIN_INCORRECT') {
        throw await pinIncorrect(ctx, s.fingerprint, e);
      }
      if (e instanceof DaemonError && e.agentCode === 'PIN_REQUIRED') {
        throw new SegelError('PIN_INVALID', 'enter the PIN');
      }
      throw e;
    }
    if (r.report?.content_sha256 !== undefined && r.report.content_sha256 !== f.sha256) {
      throw new SegelError('INTERNAL', `the daemon sealed ${f.name} with another hash than it received`);
    }
    await ctx.save(r.id, r.name);
    out.push({
      file: f.name,
      bytes: f.bytes,
      sha256: f.sha256,
      sealed: r.name,
      sealedBytes: r.bytes,
      recipients: r.report?.recipients ?? [],
    });
  }
  return out;
}
