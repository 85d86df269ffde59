// Remembering a site: only from Segel's window, after the user ticked "remember this site".
// The daemon takes grants only from callers without a site origin (the user's own tools).

import type { ActionContext } from '../context';

export async function grantConsent(ctx: ActionContext): Promise<void> {
  await ctx.transport.call('POST', '/v1/consent', { body: { origin: ctx.site } });
}
