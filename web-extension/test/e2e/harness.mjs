// End-to-end harness: everything private under one temp dir, nothing of the machine's own
// configuration touched.
//   - SoftHSM2 with a private SOFTHSM2_CONF; token "vendor" with the repo's test fixture
//     vendor-p256 (key + certificate, tests/fixtures/), user PIN 1234.
//   - `segel serve --port 0` with HOME in the temp dir and an admin policy file naming Segel's
//     extension origin and the allowed demo site.
//   - The daemon's local CA trusted in the private HOME's NSS database (Chromium on Linux).
//   - Two local web servers with the demo page: the allowed site and a site not in the policy
//     (both http://localhost:PORT, a secure context).
//   - Debian Chromium (playwright-core, never a browser download) with a private profile, the
//     unpacked extension, and the native-messaging host manifest in the profile.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const here = new URL('.', import.meta.url).pathname;
export const EXT_ROOT = resolve(here, '../..');
export const REPO = resolve(EXT_ROOT, '..');
export const EXT_DIR = join(EXT_ROOT, 'dist/chromium');
export const PIN = '1234';
export const GECKO_ID = 'segel@segel.id';
/** Firefox gives each add-on a random moz-extension UUID per profile; the test fixes it by pref. */
export const FIREFOX_UUID = '5e6e7c1a-2f1b-4c55-9d7e-5e9e1a7c0a11';
export const FIXTURE = 'vendor-p256';
const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const SPY_MODULE = '/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so';
/** Calls that only read slot and token state (the daemon's token poller makes them). */
export const READS = new Set(['C_GetInfo', 'C_GetSlotList', 'C_GetSlotInfo', 'C_GetTokenInfo', 'C_GetMechanismList', 'C_GetMechanismInfo']);

/** The Chromium extension ID: SHA-256 of the manifest's public key, first 32 hex digits a–p. */
export function extensionId(manifestPath = join(EXT_ROOT, 'manifest/manifest.json')) {
  const key = JSON.parse(readFileSync(manifestPath, 'utf8')).key;
  const hex = createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 32);
  return [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
}

export function chromiumBinary() {
  for (const p of [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium']) {
    if (p && existsSync(p)) {
      return p;
    }
  }
  throw new Error('Debian Chromium not found: run scripts/install-test-deps (apt-get install chromium)');
}

export function segelBinary() {
  const p = process.env.SEGEL_BIN ?? join(REPO, 'target/debug/segel');
  if (!existsSync(p)) {
    throw new Error(`${p} missing: build it first (cargo build --bin segel) or set SEGEL_BIN`);
  }
  return p;
}

function hasSubcommand(segel, name) {
  try {
    execFileSync(segel, [name, '--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function run(cmd, args, env) {
  return execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

/** A static server for the demo page and dist/segel.js on 127.0.0.1; pages use http://localhost:PORT. */
export async function demoServer() {
  const files = {
    '/': join(EXT_ROOT, 'demo/index.html'),
    '/index.html': join(EXT_ROOT, 'demo/index.html'),
    '/demo.js': join(EXT_ROOT, 'demo/demo.js'),
    '/segel.js': join(EXT_ROOT, 'dist/segel.js'),
  };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (f === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(f)] ?? 'text/html', 'Cache-Control': 'no-store' });
    res.end(readFileSync(f));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, origin: `http://localhost:${server.address().port}` };
}

/**
 * SoftHSM2 with a private config under `dir` (sets `env.SOFTHSM2_CONF`): token "vendor" with the
 * fixtures vendor-p256 (id 01) and vendor-rsa2048 (id 02), keys and certificates, user PIN 1234;
 * and an empty token "spare". Returns the certificates: {certPem, certDer, rsaCertPem, rsaCertDer}.
 */
export function vendorTokens(dir, env) {
  const tokens = join(dir, 'softhsm');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  env.SOFTHSM2_CONF = conf;
  const t = {};
  run('softhsm2-util', ['--init-token', '--free', '--label', 'vendor', '--so-pin', '87654321', '--pin', PIN], env);
  // A second, empty token: removed during the tests to raise a token event.
  run('softhsm2-util', ['--init-token', '--free', '--label', 'spare', '--so-pin', '87654321', '--pin', PIN], env);
  const fx = join(REPO, 'tests/fixtures');
  t.certPem = readFileSync(join(fx, `${FIXTURE}.crt.pem`), 'utf8');
  t.certDer = readFileSync(join(fx, `${FIXTURE}.crt.der`));
  const spki = join(dir, 'spki.der');
  writeFileSync(`${spki}.pem`, run('openssl', ['x509', '-in', join(fx, `${FIXTURE}.crt.pem`), '-noout', '-pubkey'], env));
  run('openssl', ['pkey', '-pubin', '-in', `${spki}.pem`, '-outform', 'DER', '-out', spki], env);
  const p11 = ['--module', '/usr/lib/softhsm/libsofthsm2.so', '--token-label', 'vendor', '--id', '01', '--label', 'Budi Santoso'];
  run('pkcs11-tool', [...p11, '--login', '--pin', PIN, '--write-object', join(fx, `${FIXTURE}.key.pem`), '--type', 'privkey', '--sensitive', '--usage-sign'], env);
  run('pkcs11-tool', [...p11, '--write-object', spki, '--type', 'pubkey', '--usage-sign'], env);
  run('pkcs11-tool', [...p11, '--write-object', join(fx, `${FIXTURE}.crt.der`), '--type', 'cert'], env);
  // A second signing key on the same token: RSA-2048 (the BSrE profile's key type).
  t.rsaCertPem = readFileSync(join(fx, 'vendor-rsa2048.crt.pem'), 'utf8');
  t.rsaCertDer = readFileSync(join(fx, 'vendor-rsa2048.crt.der'));
  writeFileSync(`${spki}.rsa.pem`, run('openssl', ['x509', '-in', join(fx, 'vendor-rsa2048.crt.pem'), '-noout', '-pubkey'], env));
  run('openssl', ['pkey', '-pubin', '-in', `${spki}.rsa.pem`, '-outform', 'DER', '-out', `${spki}.rsa`], env);
  const rsa = ['--module', SOFTHSM, '--token-label', 'vendor', '--id', '02', '--label', 'Budi Santoso RSA'];
  run('pkcs11-tool', [...rsa, '--login', '--pin', PIN, '--write-object', join(fx, 'vendor-rsa2048.key.pem'), '--type', 'privkey', '--sensitive', '--usage-sign'], env);
  run('pkcs11-tool', [...rsa, '--write-object', `${spki}.rsa`, '--type', 'pubkey', '--usage-sign'], env);
  run('pkcs11-tool', [...rsa, '--write-object', join(fx, 'vendor-rsa2048.crt.der'), '--type', 'cert'], env);
  return t;
}

/**
 * Debian Chromium (never a browser download) with the profile `userDataDir`, the unpacked
 * extension `extensionDir` and the environment `env` (HOME decides the NSS database it trusts).
 */
export function launchChromium(userDataDir, env, lang = 'en-US', extensionDir = EXT_DIR, downloadsPath = undefined) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumBinary(),
    // Where downloads land (named by Playwright), e.g. the bids the extension saves.
    ...(downloadsPath === undefined ? {} : { acceptDownloads: true, downloadsPath }),
    headless: true,
    // Chromium on Linux takes its UI language from LANGUAGE / LANG (--lang is for other systems).
    env: { ...env, LANGUAGE: lang.replace('-', '_'), LANG: `${lang.replace('-', '_')}.UTF-8` },
    args: [
      `--disable-extensions-except=${extensionDir}`,
      `--load-extension=${extensionDir}`,
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--lang=${lang}`,
      // A name for an insecure (non-loopback http) page; it still resolves to 127.0.0.1 only.
      '--host-resolver-rules=MAP insecure.test 127.0.0.1',
    ],
  });
}

/** The extension's service worker in `context`, once it runs. */
export async function extensionWorker(context, id) {
  const ours = (w) => w.url().startsWith(`chrome-extension://${id}/`);
  return context.serviceWorkers().find(ours) ?? context.waitForEvent('serviceworker', { predicate: ours, timeout: 30000 });
}

export class Stack {
  /** `browser`: 'chromium' (Playwright) or 'none' (the caller launches one, e.g. Firefox). */
  /** `lang`: the browser's UI language (Segel's window follows it). */
  /** `spy`: load SoftHSM through OpenSC's pkcs11-spy, so tests can count the token calls. */
  static async start({ trustCa = true, browser = 'chromium', lang = 'en-US', spy = true } = {}) {
    const s = new Stack();
    await s.#start(trustCa, browser, lang, spy);
    return s;
  }

  async #start(trustCa, browser, lang, spy) {
    this.dir = mkdtempSync(join(tmpdir(), 'segel-e2e-'));
    this.home = join(this.dir, 'home');
    mkdirSync(this.home, { recursive: true });
    this.segel = segelBinary();
    this.extensionId = extensionId();

    // SoftHSM2, private config; tokens exist before the daemon initialises the module.
    this.env = {
      PATH: process.env.PATH,
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, '.config'),
      XDG_STATE_HOME: join(this.home, '.local/state'),
      XDG_CACHE_HOME: join(this.home, '.cache'),
      XDG_DATA_HOME: join(this.home, '.local/share'),
      SEGEL_BIN: this.segel,
      SEGEL_E2E_HOST_LOG: join(this.dir, 'native-host.log'),
      LANG: 'C.UTF-8',
    };
    Object.assign(this, vendorTokens(this.dir, this.env));

    // A committee (pokja) decryption key on the same token: RSA-2048, for sealing and opening bids.
    const fx = join(REPO, 'tests/fixtures');
    const spki = join(this.dir, 'spki.der');
    this.pokjaCertDer = readFileSync(join(fx, 'pokja-rsa2048.crt.der'));
    writeFileSync(`${spki}.pokja.pem`, run('openssl', ['x509', '-in', join(fx, 'pokja-rsa2048.crt.pem'), '-noout', '-pubkey'], this.env));
    run('openssl', ['pkey', '-pubin', '-in', `${spki}.pokja.pem`, '-outform', 'DER', '-out', `${spki}.pokja`], this.env);
    const pokja = ['--module', SOFTHSM, '--token-label', 'vendor', '--id', '03', '--label', 'Pokja RSA'];
    run('pkcs11-tool', [...pokja, '--login', '--pin', PIN, '--write-object', join(fx, 'pokja-rsa2048.key.pem'), '--type', 'privkey', '--sensitive', '--usage-decrypt'], this.env);
    run('pkcs11-tool', [...pokja, '--write-object', `${spki}.pokja`, '--type', 'pubkey', '--usage-decrypt'], this.env);
    run('pkcs11-tool', [...pokja, '--write-object', join(fx, 'pokja-rsa2048.crt.der'), '--type', 'cert'], this.env);

    // Demo sites: one allowed by policy, one not.
    this.allowed = await demoServer();
    this.other = await demoServer();

    // The daemon, with an admin policy of our own (the machine's /etc/segel is never read).
    const policy = join(this.dir, 'policy.toml');
    writeFileSync(
      policy,
      `extension_origins = ["chrome-extension://${this.extensionId}", "moz-extension://${FIREFOX_UUID}"]\n` +
        `allowed_origins = ["${this.allowed.origin}"]\n` +
        'login_idle_seconds = 600\n',
    );
    this.env.SEGEL_POLICY_FILE = policy;
    this.daemonLog = join(this.dir, 'serve.log');
    const log = (await import('node:fs')).openSync(this.daemonLog, 'w');
    // pkcs11-spy logs every PKCS#11 call the daemon makes (PINs too: the log stays in the temp dir).
    this.spyLog = join(this.dir, 'pkcs11-spy.log');
    const module = spy ? SPY_MODULE : SOFTHSM;
    const spyEnv = spy ? { PKCS11SPY: SOFTHSM, PKCS11SPY_OUTPUT: this.spyLog } : {};
    this.daemon = spawn(this.segel, ['--module', module, 'serve', '--port', '0', '--policy', policy], {
      env: { ...this.env, ...spyEnv, SEGEL_LOG: 'info' },
      stdio: ['ignore', log, log],
    });
    this.endpoint = await this.#waitEndpoint();

    // Trust the local CA in the private HOME's NSS database (what Chromium on Linux reads).
    const nss = join(this.home, '.pki/nssdb');
    mkdirSync(nss, { recursive: true });
    run('certutil', ['-d', `sql:${nss}`, '-N', '--empty-password'], this.env);
    if (trustCa) {
      run('certutil', ['-d', `sql:${nss}`, '-A', '-n', 'segel-local-ca', '-t', 'C,,', '-i', this.endpoint.ca_cert], this.env);
    }

    // The native-messaging host: Chromium reads it from the profile, Firefox from HOME.
    this.profile = join(this.dir, 'profile');
    this.hostScript = join(this.dir, 'segel-native-host');
    // The daemon's own `segel native-host` when this segel has it (SEGEL_E2E_NATIVE_HOST=standin
    // forces the stand-in), else the stand-in speaking the same protocol.
    this.nativeHost = process.env.SEGEL_E2E_NATIVE_HOST ?? (hasSubcommand(this.segel, 'native-host') ? 'segel' : 'standin');
    const hostJs = join(here, this.nativeHost === 'segel' ? 'native-host-proxy.mjs' : 'native-host.mjs');
    writeFileSync(this.hostScript, `#!/bin/sh\nexec "${process.execPath}" "${hostJs}" "$@"\n`);
    chmodSync(this.hostScript, 0o755);
    const host = { name: 'id.segel.agent', description: 'Segel agent', path: this.hostScript, type: 'stdio' };
    mkdirSync(join(this.profile, 'NativeMessagingHosts'), { recursive: true });
    writeFileSync(
      join(this.profile, 'NativeMessagingHosts/id.segel.agent.json'),
      JSON.stringify({ ...host, allowed_origins: [`chrome-extension://${this.extensionId}/`] }),
    );
    mkdirSync(join(this.home, '.mozilla/native-messaging-hosts'), { recursive: true });
    writeFileSync(
      join(this.home, '.mozilla/native-messaging-hosts/id.segel.agent.json'),
      JSON.stringify({ ...host, allowed_extensions: [GECKO_ID] }),
    );
    if (browser === 'none') {
      return;
    }

    // Downloads (sealed and opened bids the extension saves) land here, named by Playwright.
    this.downloads = join(this.dir, 'downloads');
    mkdirSync(this.downloads);
    this.context = await launchChromium(this.profile, this.env, lang, EXT_DIR, this.downloads);
    this.worker = await extensionWorker(this.context, this.extensionId);
  }

  async #waitEndpoint() {
    const t0 = Date.now();
    for (;;) {
      if (this.daemon.exitCode !== null) {
        throw new Error(`segel serve exited: ${readFileSync(this.daemonLog, 'utf8')}`);
      }
      try {
        return JSON.parse(run(this.segel, ['--json', 'endpoint'], this.env));
      } catch {
        /* not yet */
      }
      if (Date.now() - t0 > 20000) {
        throw new Error(`segel serve did not start: ${readFileSync(this.daemonLog, 'utf8')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The PKCS#11 calls the daemon made so far, from pkcs11-spy's log: [{fn, rv}]. */
  tokenCalls() {
    const calls = [];
    const log = existsSync(this.spyLog) ? readFileSync(this.spyLog, 'latin1') : '';
    for (const line of log.split('\n')) {
      const m = /^\d+: (C_\w+)$/.exec(line);
      if (m) {
        calls.push({ fn: m[1], rv: null });
      } else if (line.startsWith('Returned:') && calls.length > 0) {
        calls[calls.length - 1].rv = line.split(/\s+/)[2] ?? null;
      }
    }
    return calls;
  }

  /** Remove a token (as pulling it out would): SoftHSM drops it from the running daemon's list. */
  removeToken(label) {
    run('softhsm2-util', ['--delete-token', '--token', label], this.env);
  }

  /** What the native host was asked: [{type, method, path}]. */
  nativeHostLog() {
    const f = join(this.dir, 'native-host.log');
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  }

  /** Open the demo page of `site` ('allowed' | 'other' | 'insecure': http://insecure.test:PORT). */
  async page(site = 'allowed') {
    const p = await this.context.newPage();
    const origin = site === 'insecure' ? this.other.origin.replace('localhost', 'insecure.test') : this[site].origin;
    await p.goto(`${origin}/`);
    await p.waitForFunction(() => window.Segel !== undefined);
    return p;
  }

  /** The next Segel window (consent.html) that opens. */
  waitWindow() {
    return this.context.waitForEvent('page', {
      predicate: (p) => p.url().startsWith(`chrome-extension://${this.extensionId}/consent.html`),
      timeout: 30000,
    });
  }

  /** Files the browser downloaded so far: [{path, bytes}]. */
  downloaded() {
    const out = [];
    for (const f of readdirSync(this.downloads)) {
      if (f.endsWith('.crdownload')) {
        continue; // still being written
      }
      try {
        out.push({ path: join(this.downloads, f), bytes: statSync(join(this.downloads, f)).size });
      } catch {
        /* renamed meanwhile */
      }
    }
    return out;
  }

  /** Segel windows open now. */
  windows() {
    return this.context.pages().filter((p) => p.url().startsWith(`chrome-extension://${this.extensionId}/consent.html`));
  }

  async stop() {
    await this.context?.close().catch(() => undefined);
    this.allowed?.server.close();
    this.other?.server.close();
    if (this.daemon && this.daemon.exitCode === null) {
      this.daemon.kill('SIGTERM');
      await new Promise((r) => this.daemon.once('exit', r));
    }
    if (process.env.SEGEL_E2E_KEEP === undefined) {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
