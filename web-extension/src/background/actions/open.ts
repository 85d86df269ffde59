// `Segel.open({certificate})`: a committee (pokja) member opens sealed bids (`.p7m`).
//
// 1. The daemon is asked as the site whether it may ask at all (ORIGIN_NOT_ALLOWED, or the
//    window asks for consent).
// 2. Segel's window shows the site, the operation and the decryption certificate; the member
//    picks the `.p7m` files there (streamed to the daemon; names, sizes, SHA-256s shown) and
//    enters the PIN once for the whole opening.
// 3. The opening runs as a daemon job (`POST /v1/open`, one login); its progress reaches the
//    page as `progress` events (`Segel.on('progress')`, the daemon's `job_progress`). Each
//    opened bid is saved to the Downloads folder by the browser's download manager; the page
//    gets the opening report. A wrong PIN fails the whole job before any bid, never retried.

import { DAEMON_TO_PAGE, DaemonError, SegelError, isDaemonCode } from '../../shared/errors';
import type { OpenedBid, PickedFile } from '../../shared/messages';
import type { ActionContext } from '../context';
import { paramsObject } from '../context';
import { dropPicked, pickedFiles, pinFields, siteNeedsConsent } from './bids';
import { certificateView, pinIncorrect } from './token-view';
import { grantConsent } from './consent';
import { certificateFingerprint } from './sign';

export interface OpeningResult {
  openedBy: unknown;
  bids: OpenedBid[];
}

interface DaemonJob {
  id: string;
  state: 'running' | 'done' | 'failed';
  result: { opened_by?: unknown; bids?: DaemonBidLine[] } | null;
  error: { code?: unknown; message?: unknown } | null;
}

interface DaemonBidLine {
  file: string;
  status: string;
  vendor: string | null;
  signature_valid: boolean;
  chain: unknown;
  signing_time: string | null;
  plaintext_sha256: string | null;
  size: number | null;
  error: string | null;
  error_code: string | null;
  download?: string;
}

/** How often the job is asked for (its progress also comes as events). */
export const JOB_POLL_MS = 250;

export async function parseOpenParams(params: unknown): Promise<{ fingerprint: string }> {
  const p = paramsObject(params);
  return { fingerprint: await certificateFingerprint(p.certificate) };
}

function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i >= 0 ? path.slice(i + 1) : path;
}

export async function open(ctx: ActionContext, params: unknown, pollMs = JOB_POLL_MS): Promise<OpeningResult> {
  const o = await parseOpenParams(params);
  const needConsent = await siteNeedsConsent(ctx, 'decrypt');
  const cert = await certificateView(ctx, o.fingerprint);
  return ctx.ui.ask(
    { site: ctx.site, operation: 'open', needConsent, ...cert, pickFiles: { accept: '.p7m', multiple: true } },
    async (d) => {
      const files = pickedFiles(d.files);
      if (needConsent && d.remember) {
        await grantConsent(ctx);
      }
      try {
        return await runJob(ctx, o.fingerprint, files, d.pin, d.finalTry, pollMs);
      } finally {
        await dropPicked(ctx, files);
      }
    },
  );
}

async function runJob(
  ctx: ActionContext,
  fingerprint: string,
  files: PickedFile[],
  pin: string | undefined,
  finalTry: boolean,
  pollMs: number,
): Promise<OpeningResult> {
  let job: string;
  try {
    ({ job } = await ctx.transport.call<{ job: string }>('POST', '/v1/open', {
      body: { files: files.map((f) => f.id), certificate: fingerprint, ...pinFields(pin, finalTry) },
    }));
  } catch (e) {
    throw await pinError(ctx, fingerprint, e);
  }
  let j: DaemonJob;
  for (;;) {
    j = await ctx.transport.call<DaemonJob>('GET', `/v1/jobs/${encodeURIComponent(job)}`);
    if (j.state !== 'running') {
      break;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  if (j.state === 'failed') {
    const code = j.error?.code;
    const message = typeof j.error?.message === 'string' ? j.error.message : 'the opening failed';
    if (isDaemonCode(code)) {
      throw await pinError(ctx, fingerprint, new DaemonError(code, message, 0));
    }
    throw new SegelError('INTERNAL', message);
  }
  const lines = j.result?.bids ?? [];
  const bids: OpenedBid[] = [];
  for (const [i, l] of lines.entries()) {
    // The daemon keeps the order of the files it was given.
    const picked = files.at(i);
    let saved: string | null = null;
    if (typeof l.download === 'string') {
      const name = (picked?.name ?? baseName(l.file)).replace(/\.p7m$/i, '') || `bid-${i + 1}`;
      await ctx.save(l.download, name);
      saved = name;
    }
    bids.push({
      file: picked?.name ?? baseName(l.file),
      sealedSha256: picked?.sha256 ?? '',
      status: l.status,
      vendor: l.vendor,
      signatureValid: l.signature_valid,
      chain: l.chain,
      signingTime: l.signing_time,
      sha256: l.plaintext_sha256,
      size: l.size,
      saved,
      error: l.error,
      errorCode: l.error_code === null ? null : isDaemonCode(l.error_code) ? DAEMON_TO_PAGE[l.error_code] : 'INTERNAL',
      agentCode: l.error_code,
    });
  }
  return { openedBy: j.result?.opened_by ?? null, bids };
}

async function pinError(ctx: ActionContext, fingerprint: string, e: unknown): Promise<unknown> {
  if (e instanceof DaemonError && e.agentCode === 'PIN_INCORRECT') {
    return pinIncorrect(ctx, fingerprint, e);
  }
  if (e instanceof DaemonError && e.agentCode === 'PIN_REQUIRED') {
    return new SegelError('PIN_INVALID', 'enter the PIN');
  }
  return e;
}
