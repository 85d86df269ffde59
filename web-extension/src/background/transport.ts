// The one way the extension talks to the daemon.
//
// 1. The endpoint (URL and the per-user credential) comes from the native-messaging host
//    `id.segel.agent` (`segel native-host`), which the browser starts only for Segel's
//    extension ID. It is kept in memory only (a service worker restart asks again).
// 2. Calls go as HTTPS `fetch` to the loopback port with `Authorization: Bearer …` and, for a
//    site's request, `X-Segel-Site-Origin` — the origin the browser gave us in `sender`.
// 3. When the loopback port cannot be reached (browser network rules, an untrusted local CA),
//    the same call is relayed through the native host: one API, two paths.
//
// Native host messages (JSON; `segel native-host`, see docs/architecture.md "Browser extension"):
//   {"type": "endpoint"}                                   → {"type": "endpoint", "url", "credential", …}
//   {"type": "request", id, method, path, site_origin?, body?} → {"type": "response", id, "status", "body"}
//   failures                                               → {"type": "error", "code", "message"}
// (`body` is the JSON value itself, both ways.)

import { DaemonError, SegelError, isDaemonCode } from '../shared/errors';

export const NATIVE_HOST = 'id.segel.agent';
export const SITE_ORIGIN_HEADER = 'X-Segel-Site-Origin';

export interface Endpoint {
  url: string;
  credential: string;
}

export interface CallOptions {
  /** The requesting site's origin (from `sender`); absent for the user's own window. */
  site?: string;
  body?: unknown;
  signal?: AbortSignal;
}

/** What the transport needs from the browser (replaced by fakes in unit tests). */
export interface TransportDeps {
  sendNative(message: unknown): Promise<unknown>;
  fetch(url: string, init: RequestInit): Promise<Response>;
}

export interface Transport {
  call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, opts?: CallOptions): Promise<T>;
  /** A streaming GET (Server-Sent Events); only over HTTPS. */
  stream(path: string, opts: CallOptions): Promise<ReadableStream<Uint8Array>>;
  /** Stream a file to the daemon (`POST /v1/files?name=…`, the `Blob` as the body, never read
   * into memory here); only over HTTPS (the native-messaging relay carries JSON only). */
  upload(name: string, body: Blob, opts?: CallOptions): Promise<HeldFile>;
  /** URL and headers to fetch a held file (`GET /v1/files/{id}`), e.g. for the browser's
   * download manager, which streams it to disk. */
  fileRequest(id: string): Promise<{ url: string; headers: Record<string, string> }>;
  /** Forget the cached endpoint (e.g. the daemon restarted on another port). */
  reset(): void;
  /** Which path the last call took (for status and tests). */
  lastPath(): 'https' | 'native' | null;
}

/** A file the daemon holds (`POST /v1/files`). */
export interface HeldFile {
  id: string;
  name: string;
  bytes: number;
  sha256: string;
}

interface Reply {
  status: number;
  text: string;
}

function agentUnavailable(message: string): SegelError {
  return new SegelError('AGENT_UNAVAILABLE', message);
}

function asRecord(v: unknown): Record<string, unknown> | null {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
}

/** Turn a daemon reply into a result or a typed error. */
export function decodeReply<T>(reply: Reply): T {
  let parsed: unknown;
  try {
    parsed = reply.text === '' ? null : JSON.parse(reply.text);
  } catch {
    throw new SegelError('INTERNAL', `the daemon answered ${reply.status} with a body that is not JSON`);
  }
  if (reply.status >= 200 && reply.status < 300) {
    return parsed as T;
  }
  const body = asRecord(parsed);
  const code = body?.code;
  const message = typeof body?.message === 'string' ? body.message : `HTTP ${reply.status}`;
  if (isDaemonCode(code)) {
    throw new DaemonError(code, message, reply.status);
  }
  throw new SegelError('INTERNAL', `the daemon answered ${reply.status}: ${message}`);
}

export function createTransport(deps: TransportDeps): Transport {
  let endpoint: Endpoint | null = null;
  let path: 'https' | 'native' | null = null;
  // Once HTTPS failed for an endpoint, use the relay for that endpoint.
  let httpsBroken = false;

  async function native(message: unknown): Promise<Record<string, unknown>> {
    let answer: unknown;
    try {
      answer = await deps.sendNative(message);
    } catch (e) {
      throw agentUnavailable(
        `Segel's native host (${NATIVE_HOST}) is not installed or failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const a = asRecord(answer);
    if (a === null) {
      throw agentUnavailable(`Segel's native host gave no answer`);
    }
    if (a.type === 'error') {
      const code = a.code;
      const msg = typeof a.message === 'string' ? a.message : 'native host error';
      if (isDaemonCode(code)) {
        throw new DaemonError(code, msg, 0);
      }
      throw agentUnavailable(msg);
    }
    return a;
  }

  async function getEndpoint(): Promise<Endpoint> {
    if (endpoint !== null) {
      return endpoint;
    }
    const a = await native({ type: 'endpoint' });
    if (typeof a.url !== 'string' || typeof a.credential !== 'string') {
      throw agentUnavailable('Segel\'s native host answered without url and credential');
    }
    const url = new URL(a.url);
    if (url.protocol !== 'https:' || url.hostname !== '127.0.0.1') {
      throw agentUnavailable(`the daemon URL ${a.url} is not https://127.0.0.1:PORT`);
    }
    endpoint = { url: url.origin, credential: a.credential };
    httpsBroken = false;
    return endpoint;
  }

  function headers(ep: Endpoint, opts: CallOptions, json: boolean): Record<string, string> {
    const h: Record<string, string> = { Authorization: `Bearer ${ep.credential}` };
    if (opts.site !== undefined) {
      h[SITE_ORIGIN_HEADER] = opts.site;
    }
    if (json) {
      h['Content-Type'] = 'application/json';
    }
    return h;
  }

  async function viaHttps(ep: Endpoint, method: string, p: string, opts: CallOptions): Promise<Reply> {
    const json = opts.body !== undefined;
    const resp = await deps.fetch(ep.url + p, {
      method,
      headers: headers(ep, opts, json),
      body: json ? JSON.stringify(opts.body) : undefined,
      credentials: 'omit',
      cache: 'no-store',
      signal: opts.signal,
    });
    return { status: resp.status, text: await resp.text() };
  }

  let relayId = 0;

  async function viaNative(method: string, p: string, opts: CallOptions): Promise<Reply> {
    relayId += 1;
    const a = await native({ type: 'request', id: relayId, method, path: p, site_origin: opts.site, body: opts.body });
    if (a.type !== 'response' || typeof a.status !== 'number') {
      throw agentUnavailable('Segel\'s native host relayed no response');
    }
    return { status: a.status, text: a.body === undefined ? '' : JSON.stringify(a.body) };
  }

  async function send(method: 'GET' | 'POST' | 'DELETE', p: string, opts: CallOptions): Promise<Reply> {
    let ep = await getEndpoint();
    if (!httpsBroken) {
      try {
        const r = await viaHttps(ep, method, p, opts);
        path = 'https';
        return r;
      } catch {
        if (opts.signal?.aborted) {
          throw new SegelError('TIMEOUT', 'the request was aborted');
        }
        // Connection refused or TLS failure. The daemon may have restarted on another port:
        // ask the native host again, retry HTTPS once, then relay.
        endpoint = null;
        const fresh = await getEndpoint();
        if (fresh.url !== ep.url || fresh.credential !== ep.credential) {
          ep = fresh;
          try {
            const r = await viaHttps(ep, method, p, opts);
            path = 'https';
            return r;
          } catch {
            /* fall through to the relay */
          }
        }
        httpsBroken = true;
      }
    }
    const r = await viaNative(method, p, opts);
    path = 'native';
    return r;
  }

  return {
    async call<T>(method: 'GET' | 'POST' | 'DELETE', p: string, opts: CallOptions = {}): Promise<T> {
      return decodeReply<T>(await send(method, p, opts));
    },
    async stream(p: string, opts: CallOptions): Promise<ReadableStream<Uint8Array>> {
      const ep = await getEndpoint();
      if (httpsBroken) {
        throw new SegelError('UNSUPPORTED', 'events need the HTTPS path to the daemon');
      }
      const resp = await deps.fetch(ep.url + p, {
        method: 'GET',
        headers: { ...headers(ep, opts, false), Accept: 'text/event-stream' },
        credentials: 'omit',
        cache: 'no-store',
        signal: opts.signal,
      });
      if (!resp.ok || resp.body === null) {
        decodeReply({ status: resp.status, text: await resp.text() });
        throw new SegelError('INTERNAL', 'the event stream has no body');
      }
      return resp.body;
    },
    async upload(name: string, body: Blob, opts: CallOptions = {}): Promise<HeldFile> {
      const ep = await getEndpoint();
      if (httpsBroken) {
        throw new SegelError('UNSUPPORTED', 'files go to the daemon only over the HTTPS path');
      }
      let resp: Response;
      try {
        resp = await deps.fetch(`${ep.url}/v1/files?name=${encodeURIComponent(name)}`, {
          method: 'POST',
          headers: { ...headers(ep, opts, false), 'Content-Type': 'application/octet-stream' },
          body,
          credentials: 'omit',
          cache: 'no-store',
          signal: opts.signal,
        });
      } catch (e) {
        if (opts.signal?.aborted) {
          throw new SegelError('USER_CANCELLED', 'the upload was cancelled');
        }
        throw agentUnavailable(`cannot send ${name} to the daemon: ${e instanceof Error ? e.message : String(e)}`);
      }
      path = 'https';
      return decodeReply<HeldFile>({ status: resp.status, text: await resp.text() });
    },
    async fileRequest(id: string) {
      const ep = await getEndpoint();
      return { url: `${ep.url}/v1/files/${encodeURIComponent(id)}`, headers: headers(ep, {}, false) };
    },
    reset() {
      endpoint = null;
      httpsBroken = false;
    },
    lastPath() {
      return path;
    },
  };
}
