// `Segel.certificates({purpose})`: the certificates with a private key on the tokens.
// A site without the user's remembered consent gets Segel's window first (no PIN needed).

import { DaemonError, SegelError } from '../../shared/errors';
import type { ActionContext } from '../context';
import { paramsObject } from '../context';
import type { DaemonCertificate } from '../daemon-types';
import { grantConsent } from './consent';

export type Purpose = 'sign' | 'decrypt' | 'any';

export interface PageCertificate {
  /** DER, base64. */
  certificate: string;
  /** SHA-256 of the DER, lower-case hex. */
  fingerprint: string;
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  validNow: boolean;
  keyType: string;
  usage: ('sign' | 'decrypt')[];
  token: string;
}

export function pageCertificate(c: DaemonCertificate): PageCertificate {
  return {
    certificate: c.certificate,
    fingerprint: c.fingerprint_sha256,
    subject: c.subject,
    issuer: c.issuer,
    notBefore: c.not_before,
    notAfter: c.not_after,
    validNow: c.valid_now,
    keyType: c.key_type,
    usage: c.usage,
    token: c.token,
  };
}

export function parsePurpose(params: unknown): Purpose {
  const p = paramsObject(params).purpose ?? 'any';
  if (p !== 'sign' && p !== 'decrypt' && p !== 'any') {
    throw new SegelError('BAD_REQUEST', "purpose must be 'sign', 'decrypt' or 'any'");
  }
  return p;
}

export function certificatesPath(purpose: Purpose): string {
  return purpose === 'any' ? '/v1/certificates' : `/v1/certificates?purpose=${purpose}`;
}

export async function certificates(ctx: ActionContext, params: unknown): Promise<PageCertificate[]> {
  const purpose = parsePurpose(params);
  const path = certificatesPath(purpose);
  type Answer = { certificates: DaemonCertificate[] };
  try {
    const a = await ctx.transport.call<Answer>('GET', path, { site: ctx.site });
    return a.certificates.map(pageCertificate);
  } catch (e) {
    if (!(e instanceof DaemonError) || e.agentCode !== 'CONSENT_REQUIRED') {
      throw e;
    }
  }
  // Allowed by policy, no remembered consent: the user decides in Segel's window.
  return ctx.ui.ask(
    { site: ctx.site, operation: 'certificates', needConsent: true, needPin: false },
    async (d) => {
      if (d.remember) {
        await grantConsent(ctx);
      }
      // Approved by the user in the trusted window: the extension asks as the user.
      const a = await ctx.transport.call<Answer>('GET', path);
      return a.certificates.map(pageCertificate);
    },
  );
}
