// The daemon's JSON shapes the extension reads (docs/openapi.yaml, components/schemas).

export interface DaemonStatus {
  service: 'segel';
  version: string;
  caller: string;
  allowed_origins: string[];
}

export interface DaemonTokenFlags {
  present: boolean;
  login_required: boolean;
  protected_authentication_path: boolean;
  pin_count_low: boolean;
  pin_final_try: boolean;
  pin_locked: boolean;
}

export interface DaemonToken {
  label: string;
  manufacturer: string;
  model: string;
  serial: string;
  flags: DaemonTokenFlags;
}

export interface DaemonCertificate {
  fingerprint_sha256: string;
  subject: string;
  issuer: string;
  serial: string;
  not_before: string;
  not_after: string;
  valid_now: boolean;
  key_type: string;
  key_bits: number | null;
  usage: ('sign' | 'decrypt')[];
  token: string;
  token_serial: string;
  label: string;
  certificate: string;
}

export interface DaemonSignResponse {
  certificate: string;
  hash: 'sha256' | 'sha384' | 'sha512';
  scheme?: 'rsa-pkcs1' | 'rsa-pss' | 'ecdsa';
  signature?: string;
  cms?: string;
}
