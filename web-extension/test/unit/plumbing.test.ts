// Unit tests of the transport, the sender → origin rule, Segel's window manager, the error
// mapping and the SSE reader.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { pageEventName, sseFrames } from '../../src/background/actions/events';
import { isSecureOrigin, siteOrigin } from '../../src/background/origin';
import { createTransport } from '../../src/background/transport';
import { createConsentUi } from '../../src/background/window';
import { DAEMON_ERROR_CODES, DAEMON_TO_PAGE, DaemonError, PAGE_ERROR_CODES, SegelError } from '../../src/shared/errors';

const EXT = 'kgghmpcjmhabfkcmelnnknnjjfggdaal';

test('origin: taken from sender.origin (Chromium) or sender.url (Firefox), top frame of a tab only', () => {
  assert.equal(siteOrigin({ id: EXT, tab: {}, frameId: 0, origin: 'https://spse.lkpp.go.id', url: 'https://evil.example/' }, EXT), 'https://spse.lkpp.go.id');
  assert.equal(siteOrigin({ id: EXT, tab: {}, frameId: 0, url: 'https://spse.inaproc.id/eproc/x?y' }, EXT), 'https://spse.inaproc.id');
  assert.equal(siteOrigin({ id: EXT, tab: {}, url: 'http://localhost:8080/' }, EXT), 'http://localhost:8080');
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as SegelError).code;
    }
    return 'none';
  };
  assert.equal(code(() => siteOrigin({ id: 'other', tab: {}, origin: 'https://a.example' }, EXT)), 'ORIGIN_NOT_ALLOWED');
  assert.equal(code(() => siteOrigin({ id: EXT, origin: 'https://a.example' }, EXT)), 'ORIGIN_NOT_ALLOWED');
  assert.equal(code(() => siteOrigin({ id: EXT, tab: {}, frameId: 3, origin: 'https://a.example' }, EXT)), 'ORIGIN_NOT_ALLOWED');
  assert.equal(code(() => siteOrigin({ id: EXT, tab: {}, origin: 'http://a.example' }, EXT)), 'INSECURE_CONTEXT');
  assert.equal(code(() => siteOrigin({ id: EXT, tab: {}, origin: 'null' }, EXT)), 'ORIGIN_NOT_ALLOWED');
  assert.equal(isSecureOrigin('https://a.example/path'), false);
  assert.equal(isSecureOrigin('http://127.0.0.1:9'), true);
});

function reply(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status });
}

test('transport: endpoint from the native host once, bearer credential and site header on HTTPS', async () => {
  const native: unknown[] = [];
  const calls: { url: string; headers: Record<string, string> }[] = [];
  const t = createTransport({
    sendNative: async (m) => {
      native.push(m);
      return { url: 'https://127.0.0.1:4000', credential: 'k' };
    },
    fetch: async (url, init) => {
      calls.push({ url, headers: init.headers as Record<string, string> });
      return reply(200, { ok: 1 });
    },
  });
  assert.deepEqual(await t.call('GET', '/v1/status', { site: 'https://a.example' }), { ok: 1 });
  await t.call('GET', '/v1/tokens');
  assert.deepEqual(native, [{ type: 'endpoint' }]);
  assert.equal(calls[0].url, 'https://127.0.0.1:4000/v1/status');
  assert.equal(calls[0].headers.Authorization, 'Bearer k');
  assert.equal(calls[0].headers['X-Segel-Site-Origin'], 'https://a.example');
  assert.equal('X-Segel-Site-Origin' in calls[1].headers, false);
  assert.equal(t.lastPath(), 'https');
});

test('transport: daemon errors become DaemonError with the page code', async () => {
  const t = createTransport({
    sendNative: async () => ({ url: 'https://127.0.0.1:4000', credential: 'k' }),
    fetch: async () => reply(403, { code: 'SITE_NOT_ALLOWED', message: 'no' }),
  });
  await assert.rejects(t.call('GET', '/v1/status'), (e: unknown) => e instanceof DaemonError && e.code === 'ORIGIN_NOT_ALLOWED' && e.agentCode === 'SITE_NOT_ALLOWED');
});

test('transport: loopback port unreachable → endpoint asked again, then the call is relayed through the native host', async () => {
  const native: Record<string, unknown>[] = [];
  let fetches = 0;
  const t = createTransport({
    sendNative: async (m) => {
      native.push(m as Record<string, unknown>);
      if ((m as { type: string }).type === 'endpoint') {
        return { url: 'https://127.0.0.1:4000', credential: 'k' };
      }
      return { type: 'response', id: (m as { id: number }).id, status: 200, body: { relayed: true } };
    },
    fetch: async () => {
      fetches += 1;
      throw new TypeError('Failed to fetch');
    },
  });
  assert.deepEqual(await t.call('POST', '/v1/sign', { site: 'https://a.example', body: { x: 1 } }), { relayed: true });
  assert.equal(t.lastPath(), 'native');
  assert.deepEqual(native[2], { type: 'request', id: 1, method: 'POST', path: '/v1/sign', site_origin: 'https://a.example', body: { x: 1 } });
  assert.equal(fetches, 1);
  // Later calls go straight to the relay.
  await t.call('GET', '/v1/status');
  assert.equal(fetches, 1);
});

test('transport: a relayed daemon error keeps its code; a native host error is typed', async () => {
  const t = createTransport({
    sendNative: async (m) => {
      const msg = m as { type: string; path?: string };
      if (msg.type === 'endpoint') {
        return { type: 'endpoint', url: 'https://127.0.0.1:4000', credential: 'k' };
      }
      if (msg.path === '/v1/status') {
        return { type: 'error', code: 'DAEMON_NOT_RUNNING', message: 'not running' };
      }
      return { type: 'response', id: 1, status: 403, body: { code: 'CONSENT_REQUIRED', message: 'ask' } };
    },
    fetch: async () => {
      throw new TypeError('Failed to fetch');
    },
  });
  await assert.rejects(t.call('GET', '/v1/certificates', { site: 'https://a.example' }), (e: unknown) => e instanceof DaemonError && e.agentCode === 'CONSENT_REQUIRED');
  await assert.rejects(t.call('GET', '/v1/status'), (e: unknown) => e instanceof DaemonError && e.code === 'AGENT_UNAVAILABLE');
});

test('transport: no native host → AGENT_UNAVAILABLE; a non-loopback URL is refused', async () => {
  const none = createTransport({
    sendNative: async () => {
      throw new Error('Specified native messaging host not found.');
    },
    fetch: async () => reply(200, {}),
  });
  await assert.rejects(none.call('GET', '/v1/status'), (e: unknown) => e instanceof SegelError && e.code === 'AGENT_UNAVAILABLE');
  const remote = createTransport({
    sendNative: async () => ({ url: 'https://192.0.2.1:4000', credential: 'k' }),
    fetch: async () => reply(200, {}),
  });
  await assert.rejects(remote.call('GET', '/v1/status'), (e: unknown) => e instanceof SegelError && e.code === 'AGENT_UNAVAILABLE');
});

function windowDeps() {
  const opened: string[] = [];
  const closed: number[] = [];
  let removed: (id: number) => void = () => undefined;
  let next = 1;
  return {
    opened,
    closed,
    remove: (id: number) => removed(id),
    deps: {
      open: async (url: string) => {
        opened.push(url);
        return next++;
      },
      close: async (id: number) => {
        closed.push(id);
      },
      onRemoved: (l: (id: number) => void) => {
        removed = l;
      },
      pageUrl: (id: string) => `consent.html?id=${id}`,
      timeoutMs: 200,
    },
  };
}

const VIEW = { site: 'https://a.example', operation: 'sign' as const, needConsent: true, needPin: true };

test('window: approve runs the operation once with the PIN; the window learns the outcome', async () => {
  const w = windowDeps();
  const ui = createConsentUi(w.deps);
  const pins: (string | undefined)[] = [];
  const p = ui.ask(VIEW, async (d) => {
    pins.push(d.pin);
    return 'signed';
  });
  await new Promise((r) => setTimeout(r, 0));
  const id = new URL(w.opened[0], 'x:/').searchParams.get('id') ?? '';
  const got = (await ui.handle({ window: 'get', id })) as { view: { site: string } };
  assert.equal(got.view.site, 'https://a.example');
  assert.deepEqual(await ui.handle({ window: 'ping', id }), { alive: true });
  assert.deepEqual(await ui.handle({ window: 'decide', id, approve: true, remember: true, pin: '1234' }), { ok: true });
  assert.equal(await p, 'signed');
  assert.deepEqual(pins, ['1234']);
  assert.deepEqual(await ui.handle({ window: 'ping', id }), { gone: true });
  // The request is finished: a second decision does nothing.
  assert.deepEqual(await ui.handle({ window: 'decide', id, approve: true, remember: true, pin: '1234' }), { gone: true });
  assert.equal(pins.length, 1);
});

test('window: a failed operation settles the call with its error and is not run again', async () => {
  const w = windowDeps();
  const ui = createConsentUi(w.deps);
  let runs = 0;
  const p = ui.ask(VIEW, async () => {
    runs += 1;
    throw new SegelError('PIN_INCORRECT', 'wrong', { retriesLeft: 2 });
  });
  await new Promise((r) => setTimeout(r, 0));
  const id = new URL(w.opened[0], 'x:/').searchParams.get('id') ?? '';
  const r = (await ui.handle({ window: 'decide', id, approve: true, remember: false, pin: '0' })) as { ok: boolean; error: { code: string; retriesLeft: number } };
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 'PIN_INCORRECT');
  assert.equal(r.error.retriesLeft, 2);
  await assert.rejects(p, (e: unknown) => (e as SegelError).code === 'PIN_INCORRECT');
  await ui.handle({ window: 'decide', id, approve: true, remember: false, pin: '0' });
  assert.equal(runs, 1);
});

test('window: cancel, closing the window, a second request of the same site, and no decision in time', async () => {
  const w = windowDeps();
  const ui = createConsentUi(w.deps);
  const never = async () => assert.fail('must not run');
  const p1 = ui.ask(VIEW, never);
  await new Promise((r) => setTimeout(r, 0));
  await assert.rejects(ui.ask(VIEW, never), (e: unknown) => (e as SegelError).code === 'BUSY');
  const id1 = new URL(w.opened[0], 'x:/').searchParams.get('id') ?? '';
  await ui.handle({ window: 'decide', id: id1, approve: false, remember: false });
  await assert.rejects(p1, (e: unknown) => (e as SegelError).code === 'USER_CANCELLED');

  const p2 = ui.ask(VIEW, never);
  await new Promise((r) => setTimeout(r, 0));
  w.remove(2);
  await assert.rejects(p2, (e: unknown) => (e as SegelError).code === 'USER_CANCELLED');

  const p3 = ui.ask(VIEW, never);
  await assert.rejects(p3, (e: unknown) => (e as SegelError).code === 'TIMEOUT');
  assert.deepEqual(w.closed, [3]);
});

test('errors: every daemon code of docs/openapi.yaml is mapped to a page code', (t) => {
  for (const c of DAEMON_ERROR_CODES) {
    assert.ok((PAGE_ERROR_CODES as readonly string[]).includes(DAEMON_TO_PAGE[c]), c);
  }
  // This file runs from web-extension/dist/unit/.
  const path = new URL('../../../docs/openapi.yaml', import.meta.url).pathname;
  if (!existsSync(path)) {
    t.skip('docs/openapi.yaml (the daemon API) is not in this tree');
    return;
  }
  const text = readFileSync(path, 'utf8');
  const m = /ErrorCode:\s*\n\s*type: string\s*\n\s*enum: \[([^\]]*)\]/.exec(text);
  assert.ok(m, 'ErrorCode enum not found in openapi.yaml');
  const codes = m[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  assert.deepEqual([...codes].sort(), [...DAEMON_ERROR_CODES].sort());
});

test('events: SSE frames across chunk boundaries; comments skipped; names mapped', async () => {
  const enc = new TextEncoder();
  const chunks = [': segel events\n\n', 'event: token_inserted\nda', 'ta: {"type":"token_inserted","label":"v"}\n\nevent: job_progress\ndata: {"done":1}\n\n'];
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const x of chunks) {
        c.enqueue(enc.encode(x));
      }
      c.close();
    },
  });
  const frames = [];
  for await (const f of sseFrames(stream)) {
    frames.push(f);
  }
  assert.deepEqual(frames, [
    { event: 'token_inserted', data: '{"type":"token_inserted","label":"v"}' },
    { event: 'job_progress', data: '{"done":1}' },
  ]);
  assert.equal(pageEventName('token_removed'), 'token');
  assert.equal(pageEventName('job_progress'), 'progress');
  assert.equal(pageEventName('other'), null);
});

test('manifests: fixed Chromium ID from the key, Firefox gecko ID and background scripts', async () => {
  const { createHash } = await import('node:crypto');
  const root = new URL('../', import.meta.url).pathname; // dist/
  const chromium = JSON.parse(readFileSync(`${root}chromium/manifest.json`, 'utf8')) as Record<string, unknown>;
  const firefox = JSON.parse(readFileSync(`${root}firefox/manifest.json`, 'utf8')) as Record<string, unknown>;
  const hex = createHash('sha256').update(Buffer.from(String(chromium.key), 'base64')).digest('hex').slice(0, 32);
  const id = [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
  assert.equal(id, EXT, 'the documented extension ID (docs/architecture.md) no longer matches the key');
  assert.deepEqual(chromium.background, { service_worker: 'background.js' });
  assert.equal(chromium.manifest_version, 3);
  assert.deepEqual(chromium.permissions, ['nativeMessaging', 'downloads']);
  assert.deepEqual(chromium.host_permissions, ['https://127.0.0.1/*']);
  assert.equal('key' in firefox, false);
  assert.deepEqual(firefox.background, { scripts: ['background.js'] });
  assert.equal((firefox.browser_specific_settings as { gecko: { id: string } }).gecko.id, 'segel@segel.id');
  // Both locales carry every message.
  const en = Object.keys(JSON.parse(readFileSync(`${root}chromium/_locales/en/messages.json`, 'utf8')) as object).sort();
  const id_ = Object.keys(JSON.parse(readFileSync(`${root}chromium/_locales/id/messages.json`, 'utf8')) as object).sort();
  assert.deepEqual(id_, en);
});

test("locales: every message Segel's pages use exists, in Indonesian and English alike", () => {
  const src = new URL('../../src/', import.meta.url).pathname;
  const files = ['consent/consent.html', 'consent/consent.ts', 'shared/ui.ts', 'manage/enroll.html', 'manage/pin.html', 'manage/enroll.ts', 'manage/pin.ts', 'manage/page.ts', 'manage/admin.ts'];
  const text = files.map((f) => readFileSync(`${src}${f}`, 'utf8')).join('\n');
  const used = new Set(
    [
      ...text.matchAll(/data-i18n="([A-Za-z_]+)"/g),
      ...text.matchAll(/\bt\('([A-Za-z_]+)'/g),
      ...text.matchAll(/getMessage\('([A-Za-z_]+)'/g),
      ...text.matchAll(/key: '(problem_[A-Za-z]+)'/g),
    ].map((m) => m[1]),
  );
  assert.ok(used.size > 60, `only ${used.size} keys found`);
  const locale = (l: string) => JSON.parse(readFileSync(new URL(`../chromium/_locales/${l}/messages.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
  const en = locale('en');
  const id = locale('id');
  for (const k of used) {
    assert.ok(k in en, `message ${k} missing`);
  }
  assert.deepEqual(Object.keys(id).sort(), Object.keys(en).sort(), 'id and en have the same messages');
});

test('locales: every error code a page or Segel\'s pages can show has its text in Indonesian and English', () => {
  for (const l of ['en', 'id']) {
    const m = JSON.parse(readFileSync(new URL(`../chromium/_locales/${l}/messages.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
    for (const code of PAGE_ERROR_CODES) {
      assert.ok(`error_${code}` in m, `${l}: error_${code} missing`);
    }
  }
});
