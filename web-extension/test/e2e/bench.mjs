// Benchmark: page → segel.js → content script → background → `segel serve` → SoftHSM2 P-256
// sign → page, in headless Chromium, with the site's consent granted beforehand and the token
// logged in (one PIN entry in Segel's window first). Prints the latency distribution, and the
// same signature asked of the daemon directly over HTTPS from Node (the peer) for a ratio.
//
//   npm run bench [-- --n 500]      (needs target/debug/segel or SEGEL_BIN; see harness.mjs)
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { PIN, Stack } from './harness.mjs';

const n = Number(process.argv[process.argv.indexOf('--n') + 1]) || 300;
const warmup = 20;

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: s[0], p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] };
}

function fmt(name, st) {
  const f = (x) => x.toFixed(2).padStart(7);
  return `${name.padEnd(34)} n=${st.n}  min ${f(st.min)}  p50 ${f(st.p50)}  p90 ${f(st.p90)}  p99 ${f(st.p99)}  max ${f(st.max)}  (ms)`;
}

const stack = await Stack.start({ spy: false });
try {
  const fp = createHash('sha256').update(stack.certDer).digest('hex');
  execFileSync(stack.segel, ['consent', 'grant', stack.allowed.origin], { env: stack.env, stdio: 'ignore' });
  const page = await stack.page('allowed');

  // Log in once through Segel's window (the PIN is typed there, as a user would).
  const win = stack.waitWindow();
  const first = page.evaluate(
    ([c, d]) => window.Segel.sign({ certificate: c, digest: d }).then(() => 'ok', (e) => e.code),
    [fp, randomBytes(32).toString('base64')],
  );
  const w = await win;
  await w.waitForSelector('#pin-block:not([hidden])');
  await w.fill('#pin', PIN);
  await w.click('#approve');
  if ((await first) !== 'ok') {
    throw new Error(`first signature failed: ${await first}`);
  }

  const viaPage = await page.evaluate(
    async ([c, total]) => {
      const out = [];
      const digest = new Uint8Array(32);
      for (let i = 0; i < total; i++) {
        crypto.getRandomValues(digest);
        const t0 = performance.now();
        await window.Segel.sign({ certificate: c, digest, digestAlgorithm: 'SHA-256' });
        out.push(performance.now() - t0);
      }
      return out;
    },
    [fp, n + warmup],
  );
  const page2 = viaPage.slice(warmup);

  // Peer: the same daemon call straight from Node over HTTPS (keep-alive), as a local caller.
  const url = new URL(stack.endpoint.url);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(stack.endpoint.ca_cert) });
  const direct = [];
  for (let i = 0; i < n + warmup; i++) {
    const body = JSON.stringify({ certificate: fp, digest: randomBytes(32).toString('base64') });
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1', port: url.port, path: '/v1/sign', method: 'POST', agent,
          headers: { Authorization: `Bearer ${stack.endpoint.credential}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    if (i >= warmup) {
      direct.push(performance.now() - t0);
    }
  }
  agent.destroy();

  const sp = stats(page2);
  const sd = stats(direct);
  console.log('P-256 signatures, SoftHSM2, consent granted beforehand, token logged in');
  console.log(fmt('page → extension → daemon → page', sp));
  console.log(fmt('Node → daemon (HTTPS, peer)', sd));
  console.log(`ratio p50 page/direct: ${(sp.p50 / sd.p50).toFixed(2)}   target p50 ≤ 15 ms: ${sp.p50 <= 15 ? 'met' : 'NOT met'}`);
  await page.close();
} finally {
  await stack.stop();
}
