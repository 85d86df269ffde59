// `Segel.status()`: is the daemon reachable, is this site allowed, and (for allowed sites with
// the user's consent) which tokens are present. Answered for any secure-context page.

import { DaemonError, SegelError } from '../../shared/errors';
import type { ActionContext } from '../context';
import type { DaemonStatus, DaemonToken } from '../daemon-types';

export interface PageToken {
  label: string;
  manufacturer: string;
  model: string;
  serial: string;
  present: boolean;
  pinPad: boolean;
  pinLocked: boolean;
}

export interface StatusResult {
  /** The extension's version. */
  version: string;
  agent: {
    available: boolean;
    version: string | null;
    /** The site is an allowed procurement site (policy). */
    allowed: boolean;
    /** The user has allowed this site to use Segel (remembered consent). */
    consented: boolean;
    /** Why the agent is unavailable, when it is. */
    error?: string;
  };
  /** Token details: only for allowed sites with the user's consent, else null. */
  tokens: PageToken[] | null;
}

export function pageToken(t: DaemonToken): PageToken {
  return {
    label: t.label,
    manufacturer: t.manufacturer,
    model: t.model,
    serial: t.serial,
    present: t.flags.present,
    pinPad: t.flags.protected_authentication_path,
    pinLocked: t.flags.pin_locked,
  };
}

export async function status(ctx: ActionContext): Promise<StatusResult> {
  const result: StatusResult = {
    version: ctx.extensionVersion,
    agent: { available: false, version: null, allowed: false, consented: false },
    tokens: null,
  };
  try {
    const s = await ctx.transport.call<DaemonStatus>('GET', '/v1/status', { site: ctx.site });
    result.agent = { available: true, version: s.version, allowed: true, consented: true };
  } catch (e) {
    if (e instanceof DaemonError && (e.agentCode === 'SITE_NOT_ALLOWED' || e.agentCode === 'CONSENT_REQUIRED')) {
      // The daemon is there; ask for its version without naming the site.
      const s = await ctx.transport.call<DaemonStatus>('GET', '/v1/status');
      result.agent = {
        available: true,
        version: s.version,
        allowed: e.agentCode === 'CONSENT_REQUIRED',
        consented: false,
      };
      return result;
    }
    if (e instanceof SegelError && e.code === 'AGENT_UNAVAILABLE') {
      result.agent.error = e.message;
      return result;
    }
    throw e;
  }
  const t = await ctx.transport.call<{ tokens: DaemonToken[] }>('GET', '/v1/tokens', { site: ctx.site });
  result.tokens = t.tokens.map(pageToken);
  return result;
}
