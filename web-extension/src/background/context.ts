// What every background action receives.

import { SegelError } from '../shared/errors';
import type { Transport } from './transport';
import type { ConsentUi } from './window';

export interface ActionContext {
  /** The requesting site's origin, from the browser's `sender`. */
  site: string;
  transport: Transport;
  ui: ConsentUi;
  /** The extension's version (manifest). */
  extensionVersion: string;
  /** Save a daemon-held file for the user (the browser's download manager streams it to the
   * Downloads folder); resolves when the download started. */
  save(id: string, filename: string): Promise<void>;
}

export type Action = (ctx: ActionContext, params: unknown) => Promise<unknown>;

/** `params` as an object, or BAD_REQUEST. */
export function paramsObject(params: unknown): Record<string, unknown> {
  if (params === undefined || params === null) {
    return {};
  }
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new SegelError('BAD_REQUEST', 'the parameters must be an object');
  }
  return params as Record<string, unknown>;
}
