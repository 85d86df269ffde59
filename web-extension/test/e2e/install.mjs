// The newcomer's path, end to end, as issue 7 asks: `segel install` into a private HOME (real
// certutil / NSS databases), then Debian Chromium started with THAT HOME and its default profile
// folder ($HOME/.config/chromium, where install wrote the native-messaging manifest), the
// extension loaded from the folder install names, the native host install registered, and the
// daemon install started (no systemd here: its autostart fallback runs `segel serve` now).
// Consent and PIN go through Segel's window, a CMS signature made from the demo page is verified
// by OpenSSL, and `segel uninstall` must leave nothing: no file, no NSS entry, no registration,
// no daemon. Nothing here writes the CA trust, the manifest or the extension origin itself:
// if install forgets one, the signature cannot happen.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { demoServer, EXT_DIR, extensionId, extensionWorker, launchChromium, PIN, REPO, run, segelBinary, vendorTokens } from './harness.mjs';

/** Every path under `root`, relative, folders and files. */
function tree(root) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(root, p));
      if (e.isDirectory()) {
        walk(p);
      }
    }
  };
  walk(root);
  return out.sort();
}

/** Paths Chromium itself makes in a HOME (its profile and cache), not Segel's to remove. */
const chromiumOwn = (p) =>
  (p === '.config/chromium' || p.startsWith('.config/chromium/') || p.startsWith('.cache/chromium') || p.startsWith('.cache/dconf') || p.startsWith('.local/share/.org.chromium.')) &&
  !p.startsWith('.config/chromium/NativeMessagingHosts');

const alive = (pid) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');

/** The nicknames and trust flags in an NSS database (`certutil -L`). */
function nssList(db, env) {
  return run('certutil', ['-L', '-d', `sql:${db}`], env);
}

test('newcomer: segel install, a signature from the demo page in Chromium with that HOME, segel uninstall leaves nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segel-newcomer-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  const segel = segelBinary();
  const policy = join(dir, 'no-admin-policy.toml');
  writeFileSync(policy, ''); // no administrator policy; the machine's /etc/segel is never read
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_STATE_HOME: join(home, '.local/state'),
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_DATA_HOME: join(home, '.local/share'),
    SEGEL_POLICY_FILE: policy,
    // No user systemd on these machines; never reach the real one if there is.
    SEGEL_SYSTEMCTL: '/nonexistent/systemctl',
    LANG: 'C.UTF-8',
  };
  const { certDer, rsaCertDer } = vendorTokens(dir, env);
  const site = await demoServer();
  let context;
  let daemonPid;
  t.after(async () => {
    await context?.close().catch(() => undefined);
    site.server.close();
    if (daemonPid !== undefined && alive(daemonPid)) {
      process.kill(daemonPid, 'SIGTERM');
    }
    if (process.env.SEGEL_E2E_KEEP === undefined) {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // What the user (or LPSE IT staff) set before installing: the token's module and the
  // procurement site. Install must keep this file as it is, comments included.
  // The XDG base folders a desktop session has (shared: never Segel's to remove).
  for (const d of ['.config', '.cache', '.local/share', '.local/state']) {
    mkdirSync(join(home, d), { recursive: true });
  }
  const config = join(home, '.config/segel/config.toml');
  mkdirSync(join(home, '.config/segel'), { recursive: true });
  const userConfig =
    '# set by LPSE IT staff\n' +
    `search_modules = false\nmodules = ["/usr/lib/softhsm/libsofthsm2.so"]\n\n` +
    `[daemon]\nport = 0 # any free port\nallowed_origins = ["${site.origin}"]\n`;
  writeFileSync(config, userConfig);
  const before = tree(home);

  // 1. Install, the way a newcomer runs it: no options.
  const installed = JSON.parse(run(segel, ['--json', 'install'], env));
  const steps = installed.steps;
  const said = steps.map((s) => s.description).join('\n');
  assert.match(said, /no systemd user session/, 'the autostart fallback must be said');
  assert.ok(
    steps.some((s) => s.kind === 'instruction' && s.description.includes(EXT_DIR)),
    `install must name the built extension ${EXT_DIR}:\n${said}`,
  );
  const written = steps.filter((s) => s.kind === 'write-file').map((s) => s.path);
  const manifest = join(home, '.config/chromium/NativeMessagingHosts/id.segel.agent.json');
  assert.ok(written.includes(manifest), said);
  assert.deepEqual(JSON.parse(readFileSync(manifest, 'utf8')).allowed_origins, [`chrome-extension://${extensionId()}/`]);
  const nssdb = join(home, '.pki/nssdb');
  assert.match(nssList(nssdb, env), /Segel local CA\s+C,,/);
  assert.match(readFileSync(config, 'utf8'), /extension_origins = \["chrome-extension:\/\/kgghmpcjmhabfkcmelnnknnjjfggdaal"\]/);
  assert.ok(readFileSync(config, 'utf8').startsWith('# set by LPSE IT staff\n'), 'the user config was rewritten');
  // (p11-kit skips user modules for root, as these tests run: the registration file is checked.)
  assert.match(readFileSync(join(home, '.config/pkcs11/modules/segel.module'), 'utf8'), /^module: \/.*\/libsegel_pkcs11\.so$/m);
  // The daemon install started (what the autostart entry runs at login).
  const endpoint = JSON.parse(run(segel, ['--json', 'endpoint'], env));
  daemonPid = JSON.parse(readFileSync(join(home, '.local/state/segel/daemon/endpoint.json'), 'utf8')).pid;
  assert.ok(alive(daemonPid), 'install did not start the daemon');
  const desktop = readFileSync(join(home, '.config/autostart/segel.desktop'), 'utf8');
  assert.match(desktop, /^Exec=".*\/segel" serve$/m);

  // 2. Chromium with that HOME: default profile folder, the extension install named.
  const chromiumEnv = { ...env };
  delete chromiumEnv.SOFTHSM2_CONF; // the browser has no business with the token
  context = await launchChromium(join(home, '.config/chromium'), chromiumEnv, 'en-US', EXT_DIR);
  await extensionWorker(context, extensionId());

  // Chromium trusts the daemon's certificate: only through the CA install put in $HOME/.pki/nssdb.
  const probe = await context.newPage();
  const resp = await probe.goto(`${endpoint.url}/v1/status`); // throws on ERR_CERT_AUTHORITY_INVALID
  assert.equal(resp.status(), 401, 'no credential from a plain page: refused, but over trusted TLS');
  assert.match((await resp.securityDetails())?.issuer ?? '', /Segel/);
  await probe.close();

  // 3. The demo page: status, certificates (Segel's window asks for consent), sign (PIN).
  const page = await context.newPage();
  await page.goto(`${site.origin}/`);
  await page.waitForFunction(() => window.Segel !== undefined);
  const out = () => page.textContent('#out');
  await page.click('#btn-status');
  await page.waitForFunction(() => document.getElementById('out').textContent.includes('"available": true'));
  assert.match(await out(), /"allowed": true/);

  const waitWindow = () =>
    context.waitForEvent('page', { predicate: (p) => p.url().startsWith(`chrome-extension://${extensionId()}/consent.html`), timeout: 30000 });
  let win = waitWindow();
  await page.click('#btn-certs');
  let w = await win;
  await w.waitForSelector('#site:not(:empty)');
  assert.equal(await w.textContent('#site'), site.origin);
  if (await w.isVisible('#remember-block')) {
    await w.check('#remember');
  }
  await w.click('#approve');
  await page.waitForFunction(() => document.getElementById('cert').options.length > 0, null, { timeout: 30000 });

  await page.selectOption('#format', 'cms');
  const text = await page.inputValue('#doc-text');
  win = waitWindow();
  await page.click('#btn-sign');
  w = await win;
  await w.waitForSelector('#pin-block:not([hidden])');
  await w.fill('#pin', PIN);
  await w.click('#approve');
  await page.waitForFunction(() => /^sign( ✗)?\n/.test(document.getElementById('out').textContent), null, { timeout: 30000 });
  const shown = (await out()).split('\n\n')[0];
  assert.match(shown, /^sign\n/, shown);
  const signed = JSON.parse(shown.slice('sign\n'.length));
  assert.equal(signed.algorithm, 'cms-sha256', shown);

  // 4. OpenSSL, independently: the signature verifies to the test root and holds the document.
  const p7s = join(dir, 'demo.p7s');
  writeFileSync(p7s, Buffer.from(signed.signature, 'base64'));
  const content = execFileSync(
    'openssl',
    ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-CAfile', join(REPO, 'tests/fixtures/chain.pem'), '-purpose', 'any'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assert.equal(content.toString(), text);
  const signers = join(dir, 'signer.pem');
  execFileSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-noverify', '-signer', signers, '-out', '/dev/null'], { stdio: 'ignore' });
  const signerDer = execFileSync('openssl', ['x509', '-in', signers, '-outform', 'DER']);
  assert.ok([certDer, rsaCertDer].some((c) => c.equals(signerDer)), 'not signed by a key of the vendor token');
  // The consent the user gave in the window is remembered by the daemon.
  assert.ok(JSON.parse(run(segel, ['--json', 'consent', 'list'], env)).some((g) => g.origin === site.origin));
  await context.close();
  context = undefined;

  // 5. Uninstall: the daemon stopped, every file and registration gone, the config as it was.
  const report = JSON.parse(run(segel, ['--json', 'uninstall'], env));
  assert.deepEqual(report.problems, []);
  assert.equal(alive(daemonPid), false, 'the daemon still runs');
  for (const p of written) {
    assert.equal(existsSync(p), false, `${p} left`);
  }
  assert.equal(readFileSync(config, 'utf8'), userConfig, 'the user config is not as it was');
  if (existsSync(join(home, '.pki'))) {
    assert.fail(`the NSS database Segel made is left: ${existsSync(nssdb) ? nssList(nssdb, env) : readdirSync(join(home, '.pki'))}`);
  }
  // --purge: Segel's state (the CA, the credential, consent) goes too; what is left is Chromium's.
  const purged = JSON.parse(run(segel, ['--json', 'uninstall', '--purge'], env));
  assert.deepEqual(purged.problems, []);
  const left = tree(home).filter((p) => !before.includes(p) && !chromiumOwn(p));
  assert.deepEqual(left, [], 'left after segel uninstall --purge');
  assert.equal(existsSync(join(home, '.config/chromium/NativeMessagingHosts')), false);
});
