// `Segel.on('token' | 'progress', fn)`: the daemon's Server-Sent Events for a site with the
// user's consent, forwarded to the page's content script over a port.

import { toWireError } from '../../shared/errors';
import type { ActionContext } from '../context';

export interface PageEventOut {
  event: 'token' | 'progress' | 'error';
  data: unknown;
}

/** Split an SSE byte stream into `(event, data)` frames (comment lines are skipped). */
export async function* sseFrames(stream: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buf += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) {
          event = line.slice(6).trim();
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).trimStart());
        }
      }
      if (data.length > 0) {
        yield { event, data: data.join('\n') };
      }
    }
  }
}

/** The daemon event name → the page's event, or null to drop it. */
export function pageEventName(name: string): 'token' | 'progress' | null {
  if (name === 'token_inserted' || name === 'token_removed') {
    return 'token';
  }
  return name === 'job_progress' ? 'progress' : null;
}

/** Forward events until `signal` aborts or the stream ends. */
export async function forwardEvents(
  ctx: ActionContext,
  send: (e: PageEventOut) => void,
  signal: AbortSignal,
): Promise<void> {
  try {
    const stream = await ctx.transport.stream('/v1/events', { site: ctx.site, signal });
    for await (const f of sseFrames(stream)) {
      const name = pageEventName(f.event);
      if (name !== null) {
        send({ event: name, data: JSON.parse(f.data) as unknown });
      }
    }
  } catch (e) {
    if (!signal.aborted) {
      send({ event: 'error', data: toWireError(e) });
    }
  }
}
