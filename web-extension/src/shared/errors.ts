// The stable error codes a procurement page sees (`err.code` from segel.js), and the one
// mapping from the daemon's codes (docs/openapi.yaml, `ErrorCode`) to them.
//
// The page codes are a public contract: add codes, never rename or reuse one.

export const PAGE_ERROR_CODES = [
  /** The user closed or refused the Segel window. */
  'USER_CANCELLED',
  /** This site is not an allowed procurement site (policy), or the user refused it. */
  'ORIGIN_NOT_ALLOWED',
  /** The page is not a secure context, so Segel's extension does not answer it. */
  'INSECURE_CONTEXT',
  /** Segel's extension is not installed or did not answer (page library only). */
  'EXTENSION_UNAVAILABLE',
  /** The extension cannot reach the Segel daemon (not installed, not running, misconfigured). */
  'AGENT_UNAVAILABLE',
  /** No token is present, or the token was removed. */
  'TOKEN_ABSENT',
  /** The token reported an error (device error, module failure). */
  'TOKEN_ERROR',
  /** The PIN was wrong; `retriesLeft` / `countLow` say what the token reported. */
  'PIN_INCORRECT',
  /** The PIN is blocked. */
  'PIN_LOCKED',
  /** One PIN try is left; Segel does not use it unless the user confirms in its window. */
  'PIN_FINAL_TRY',
  /** The PIN's form (length, characters) is not accepted by the token. */
  'PIN_INVALID',
  /** No certificate (with a private key) matches the request. */
  'CERTIFICATE_NOT_FOUND',
  /** The certificate is expired, not yet valid, or may not be used for this. */
  'CERTIFICATE_INVALID',
  /** The token or Segel cannot do this operation (mechanism, missing daemon feature). */
  'UNSUPPORTED',
  /** Decryption failed (every cause looks alike). */
  'DECRYPTION_FAILED',
  /** The request is malformed (the message says which field). */
  'BAD_REQUEST',
  /** Another Segel window is already open for this site; finish it first. */
  'BUSY',
  /** No answer in time. */
  'TIMEOUT',
  /** A bug or unexpected state in Segel. */
  'INTERNAL',
] as const;

export type PageErrorCode = (typeof PAGE_ERROR_CODES)[number];

/** The daemon's error codes (docs/openapi.yaml `ErrorCode`); a unit test checks the list. */
export const DAEMON_ERROR_CODES = [
  'NO_MODULE', 'MODULE_LOAD_FAILED', 'TOKEN_NOT_FOUND', 'TOKEN_ABSENT', 'DEVICE_ERROR',
  'PIN_INCORRECT', 'PIN_LOCKED', 'PIN_FINAL_TRY', 'PIN_REQUIRED', 'PIN_INVALID',
  'MECHANISM_UNSUPPORTED', 'CERTIFICATE_NOT_FOUND', 'CERTIFICATE_AMBIGUOUS',
  'CERTIFICATE_INVALID', 'KEY_NOT_FOUND', 'DECRYPTION_FAILED', 'BAD_REQUEST', 'TOKEN_ERROR',
  'INTERNAL', 'UNAUTHORIZED', 'HOST_REJECTED', 'ORIGIN_REJECTED', 'SITE_NOT_ALLOWED',
  'CONSENT_REQUIRED', 'PAYLOAD_TOO_LARGE', 'NOT_FOUND', 'METHOD_NOT_ALLOWED', 'REQUEST_TIMEOUT',
  'UNSUPPORTED_MEDIA_TYPE', 'DAEMON_NOT_RUNNING', 'PCSC_UNAVAILABLE', 'IO_ERROR',
  'MALFORMED_INPUT', 'UNSUPPORTED_ALGORITHM', 'TAMPERED', 'NOT_A_RECIPIENT',
  'RECIPIENT_CANNOT_ENCRYPT', 'SIGNATURE_INVALID', 'FILE_REJECTED',
] as const;

export type DaemonErrorCode = (typeof DAEMON_ERROR_CODES)[number];

/**
 * Daemon code → page code. A `Record` over every daemon code, so a new daemon code is a
 * compile error here until it is mapped. PIN_REQUIRED and CONSENT_REQUIRED are handled by the
 * background (it opens Segel's window) and reach the page only if that is impossible.
 */
export const DAEMON_TO_PAGE: Record<DaemonErrorCode, PageErrorCode> = {
  NO_MODULE: 'TOKEN_ABSENT',
  MODULE_LOAD_FAILED: 'TOKEN_ERROR',
  TOKEN_NOT_FOUND: 'TOKEN_ABSENT',
  TOKEN_ABSENT: 'TOKEN_ABSENT',
  DEVICE_ERROR: 'TOKEN_ERROR',
  PIN_INCORRECT: 'PIN_INCORRECT',
  PIN_LOCKED: 'PIN_LOCKED',
  PIN_FINAL_TRY: 'PIN_FINAL_TRY',
  PIN_REQUIRED: 'PIN_INVALID',
  PIN_INVALID: 'PIN_INVALID',
  MECHANISM_UNSUPPORTED: 'UNSUPPORTED',
  CERTIFICATE_NOT_FOUND: 'CERTIFICATE_NOT_FOUND',
  CERTIFICATE_AMBIGUOUS: 'BAD_REQUEST',
  CERTIFICATE_INVALID: 'CERTIFICATE_INVALID',
  KEY_NOT_FOUND: 'CERTIFICATE_NOT_FOUND',
  DECRYPTION_FAILED: 'DECRYPTION_FAILED',
  BAD_REQUEST: 'BAD_REQUEST',
  TOKEN_ERROR: 'TOKEN_ERROR',
  INTERNAL: 'INTERNAL',
  // The extension's own credential or origin was refused: Segel is misconfigured.
  UNAUTHORIZED: 'AGENT_UNAVAILABLE',
  HOST_REJECTED: 'AGENT_UNAVAILABLE',
  ORIGIN_REJECTED: 'AGENT_UNAVAILABLE',
  SITE_NOT_ALLOWED: 'ORIGIN_NOT_ALLOWED',
  CONSENT_REQUIRED: 'ORIGIN_NOT_ALLOWED',
  PAYLOAD_TOO_LARGE: 'BAD_REQUEST',
  NOT_FOUND: 'UNSUPPORTED',
  METHOD_NOT_ALLOWED: 'UNSUPPORTED',
  REQUEST_TIMEOUT: 'TIMEOUT',
  UNSUPPORTED_MEDIA_TYPE: 'BAD_REQUEST',
  DAEMON_NOT_RUNNING: 'AGENT_UNAVAILABLE',
  // Smart-card service (pcscd) down: the token cannot be reached.
  PCSC_UNAVAILABLE: 'TOKEN_ERROR',
  // Sealed-bid failures (seal/open): the daemon's code travels along as `agentCode`.
  IO_ERROR: 'INTERNAL',
  MALFORMED_INPUT: 'BAD_REQUEST',
  UNSUPPORTED_ALGORITHM: 'UNSUPPORTED',
  TAMPERED: 'BAD_REQUEST',
  NOT_A_RECIPIENT: 'CERTIFICATE_NOT_FOUND',
  RECIPIENT_CANNOT_ENCRYPT: 'CERTIFICATE_INVALID',
  SIGNATURE_INVALID: 'BAD_REQUEST',
  FILE_REJECTED: 'BAD_REQUEST',
};

/** Extra, code-specific facts an error carries to the page (never secrets). */
export interface ErrorDetails {
  retriesLeft?: number | null;
  countLow?: boolean;
  /** The daemon's own code, for support staff. */
  agentCode?: string;
}

/** The wire form of an error (background → content → page). */
export interface WireError extends ErrorDetails {
  code: PageErrorCode;
  message: string;
}

/** An error inside the extension with a stable page code. */
export class SegelError extends Error {
  readonly code: PageErrorCode;
  readonly details: ErrorDetails;

  constructor(code: PageErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = 'SegelError';
    this.code = code;
    this.details = details;
  }

  toWire(): WireError {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** An error answer of the daemon, kept with its daemon code for the actions to inspect. */
export class DaemonError extends SegelError {
  readonly agentCode: DaemonErrorCode;
  readonly status: number;

  constructor(agentCode: DaemonErrorCode, message: string, status: number) {
    super(DAEMON_TO_PAGE[agentCode], message, { agentCode });
    this.name = 'DaemonError';
    this.agentCode = agentCode;
    this.status = status;
  }
}

export function isDaemonCode(code: unknown): code is DaemonErrorCode {
  return typeof code === 'string' && (DAEMON_ERROR_CODES as readonly string[]).includes(code);
}

export function isPageCode(code: unknown): code is PageErrorCode {
  return typeof code === 'string' && (PAGE_ERROR_CODES as readonly string[]).includes(code);
}

/** Any thrown value → the wire form; unexpected errors become INTERNAL with their message. */
export function toWireError(e: unknown): WireError {
  if (e instanceof SegelError) {
    return e.toWire();
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'INTERNAL', message };
}
