// Fakes for the background actions' unit tests: a scripted daemon behind a real transport,
// and a window that decides as told.

import type { ActionContext } from '../../src/background/context';
import { createTransport } from '../../src/background/transport';
import type { Decision, ConsentUi } from '../../src/background/window';
import type { ConsentView, WindowRequest } from '../../src/shared/messages';

export interface Seen {
  method: string;
  path: string;
  site: string | null;
  body: Record<string, unknown> | null;
}

export type Route = (req: Seen) => { status: number; body: unknown };

/** A daemon answering through `route`; records every request. */
export function fakeDaemon(route: Route) {
  const seen: Seen[] = [];
  const transport = createTransport({
    sendNative: async () => ({ url: 'https://127.0.0.1:24842', credential: 'c0ffee' }),
    fetch: async (url, init) => {
      const headers = init.headers as Record<string, string>;
      if (headers.Authorization !== 'Bearer c0ffee') {
        throw new Error('no credential sent');
      }
      const u = new URL(url);
      const req: Seen = {
        method: String(init.method),
        path: u.pathname + u.search,
        site: headers['X-Segel-Site-Origin'] ?? null,
        body: typeof init.body === 'string' ? (JSON.parse(init.body) as Record<string, unknown>) : null,
      };
      seen.push(req);
      const r = route(req);
      return new Response(JSON.stringify(r.body), { status: r.status });
    },
  });
  return { seen, transport };
}

export function refused(code: string, status = 403) {
  return { status, body: { code, message: `refused: ${code}` } };
}

/** A window that records what it was shown and decides with `decision` (null: cancel). */
export function fakeUi(decision: (Omit<Decision, 'files'> & { files?: Decision['files'] }) | null) {
  const shown: Omit<ConsentView, 'id'>[] = [];
  const ui: ConsentUi = {
    async ask(view, perform) {
      shown.push(view);
      if (decision === null) {
        const { SegelError } = await import('../../src/shared/errors');
        throw new SegelError('USER_CANCELLED', 'cancelled');
      }
      return perform({ files: [], ...decision });
    },
    async handle(_req: WindowRequest) {
      return {};
    },
  };
  return { shown, ui };
}

/** Files the action saved to the Downloads folder (`ctx.save`). */
export type Saved = { id: string; filename: string }[];

export function ctx(
  transport: ActionContext['transport'],
  ui: ConsentUi,
  site = 'https://spse.lkpp.go.id',
  saved: Saved = [],
): ActionContext {
  return {
    site,
    transport,
    ui,
    extensionVersion: '0.1.0',
    async save(id, filename) {
      saved.push({ id, filename });
    },
  };
}

export const CERT = {
  fingerprint_sha256: 'ab'.repeat(32),
  subject: 'CN=Budi Santoso',
  issuer: 'CN=Test CA',
  serial: '01',
  not_before: '2025-01-01T00:00:00Z',
  not_after: '2030-01-01T00:00:00Z',
  days_left: 1000,
  valid_now: true,
  key_type: 'EC P-256',
  key_bits: 256,
  usage: ['sign'],
  token: 'vendor',
  token_serial: 'S1',
  label: 'Budi',
  private_key: 'private-key',
  certificate: 'MIIB',
};

export const TOKEN = {
  label: 'vendor',
  manufacturer: 'SoftHSM',
  model: 'SoftHSM v2',
  serial: 'S1',
  flags: {
    present: true,
    login_required: true,
    protected_authentication_path: false,
    pin_count_low: false,
    pin_final_try: false,
    pin_locked: false,
  },
};
