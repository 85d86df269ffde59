// Segel's own window (consent/consent.html): the trusted place where the user sees what a site
// asks, enters the PIN and decides. The page never sees this window or the PIN.
//
// `ask(view, perform)` opens the window and waits. When the user approves, `perform` runs with
// the decision (PIN, remember) exactly once; its result settles the page's call and the window
// shows the outcome. Closing the window or refusing settles it with USER_CANCELLED.

import { SegelError, toWireError } from '../shared/errors';
import type { ConsentView, PickedFile, WindowRequest } from '../shared/messages';
import type { WireError } from '../shared/errors';

export interface Decision {
  remember: boolean;
  pin?: string;
  finalTry: boolean;
  /** seal/open: the files picked (and streamed to the daemon) in the window. */
  files: PickedFile[];
}

export interface WindowDeps {
  open(url: string): Promise<number | undefined>;
  close(windowId: number): Promise<void>;
  onRemoved(listener: (windowId: number) => void): void;
  pageUrl(id: string): string;
  /** Time the user has to decide. */
  timeoutMs: number;
}

export interface ConsentUi {
  ask<T>(view: Omit<ConsentView, 'id'>, perform: (d: Decision) => Promise<T>): Promise<T>;
  /** Messages from the window page. */
  handle(req: WindowRequest): Promise<unknown>;
}

interface Pending {
  view: ConsentView;
  windowId?: number;
  settled: boolean;
  busy: boolean;
  perform(d: Decision): Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export function createConsentUi(deps: WindowDeps): ConsentUi {
  const pending = new Map<string, Pending>();

  function settle(p: Pending, ok: boolean, value: unknown): void {
    if (p.settled) {
      return;
    }
    p.settled = true;
    clearTimeout(p.timer);
    if (ok) {
      p.resolve(value);
    } else {
      p.reject(value);
    }
  }

  deps.onRemoved((windowId) => {
    for (const [id, p] of pending) {
      if (p.windowId === windowId) {
        settle(p, false, new SegelError('USER_CANCELLED', 'the user closed Segel\'s window'));
        pending.delete(id);
      }
    }
  });

  return {
    ask<T>(view: Omit<ConsentView, 'id'>, perform: (d: Decision) => Promise<T>): Promise<T> {
      for (const p of pending.values()) {
        if (!p.settled && p.view.site === view.site) {
          return Promise.reject(
            new SegelError('BUSY', 'a Segel window is already open for this site; finish it first'),
          );
        }
      }
      const id = crypto.randomUUID();
      return new Promise<T>((resolve, reject) => {
        const p: Pending = {
          view: { ...view, id },
          settled: false,
          busy: false,
          perform,
          resolve: resolve,
          reject,
          timer: setTimeout(() => {
            settle(p, false, new SegelError('TIMEOUT', 'no decision in Segel\'s window in time'));
            if (p.windowId !== undefined) {
              void deps.close(p.windowId).catch(() => undefined);
            }
            pending.delete(id);
          }, deps.timeoutMs),
        };
        pending.set(id, p);
        deps.open(deps.pageUrl(id)).then(
          (windowId) => {
            p.windowId = windowId;
          },
          (e: unknown) => {
            settle(p, false, new SegelError('INTERNAL', `cannot open Segel's window: ${String(e)}`));
            pending.delete(id);
          },
        );
      });
    },

    async handle(req: WindowRequest): Promise<unknown> {
      const p = pending.get(req.id);
      if (p === undefined || p.settled) {
        return { gone: true };
      }
      if (req.window === 'get') {
        return { view: p.view };
      }
      if (req.window === 'ping') {
        return { alive: true };
      }
      if (p.busy) {
        return { ok: false, error: { code: 'BUSY', message: 'already working' } };
      }
      if (!req.approve) {
        settle(p, false, new SegelError('USER_CANCELLED', 'the user refused in Segel\'s window'));
        pending.delete(req.id);
        return { ok: true, cancelled: true };
      }
      // One attempt per request: whatever happens, this request is settled now (a wrong PIN is
      // never retried by Segel; the page may ask again).
      p.busy = true;
      // The user decided in time; the work itself (sealing or opening hundreds of MB) may take
      // longer than the time to decide.
      clearTimeout(p.timer);
      try {
        const value = await p.perform({
          remember: req.remember,
          pin: req.pin,
          finalTry: req.finalTry === true,
          files: Array.isArray(req.files) ? req.files : [],
        });
        settle(p, true, value);
        return { ok: true };
      } catch (e) {
        const error: WireError = toWireError(e);
        settle(p, false, e);
        return { ok: false, error };
      } finally {
        pending.delete(req.id);
      }
    },
  };
}
