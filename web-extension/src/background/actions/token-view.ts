// The window's view of a certificate and its token's PIN state, and the error after a wrong
// PIN: shared by every action that opens Segel's window (sign, seal, open).

import { SegelError } from '../../shared/errors';
import type { DaemonError } from '../../shared/errors';
import type { ConsentView } from '../../shared/messages';
import type { ActionContext } from '../context';
import type { DaemonCertificate, DaemonToken } from '../daemon-types';

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
