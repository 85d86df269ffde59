#!/usr/bin/env node
// TEST STAND-IN for `segel native-host` (the daemon does not have that command yet). It speaks
// the browser's native-messaging framing (32-bit native-endian length + UTF-8 JSON) and the
// protocol the extension's transport expects (src/background/transport.ts):
//   {"type":"endpoint"}                                → {"url","credential"}   (from `segel endpoint --json`)
//   {"type":"request",method,path,site?,body?}         → {"status","body"}      (relayed over HTTPS)
// Environment: SEGEL_BIN (the segel binary), HOME (the daemon's user), as the browser passes on.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import https from 'node:https';

function endpoint() {
  const out = execFileSync(process.env.SEGEL_BIN ?? 'segel', ['--json', 'endpoint'], { encoding: 'utf8' });
  return JSON.parse(out);
}

function relay(ep, msg) {
  const url = new URL(ep.url);
  const headers = { Authorization: `Bearer ${ep.credential}`, Host: url.host };
  if (typeof msg.site === 'string') {
    headers['X-Segel-Site-Origin'] = msg.site;
  }
  if (typeof msg.body === 'string') {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(msg.body);
  }
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: url.port, path: msg.path, method: msg.method, headers, ca: readFileSync(ep.ca_cert) },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    if (typeof msg.body === 'string') {
      req.write(msg.body);
    }
    req.end();
  });
}

async function answer(msg) {
  if (process.env.SEGEL_E2E_HOST_LOG) {
    // What was asked (never the body: it may hold a PIN).
    appendFileSync(process.env.SEGEL_E2E_HOST_LOG, `${JSON.stringify({ type: msg.type, method: msg.method, path: msg.path })}\n`);
  }
  try {
    const ep = endpoint();
    if (msg.type === 'endpoint') {
      return { url: ep.url, credential: ep.credential };
    }
    if (msg.type === 'request' && typeof msg.path === 'string' && msg.path.startsWith('/v1/')) {
      return await relay(ep, msg);
    }
    return { error: { code: 'BAD_REQUEST', message: `unknown message type ${msg.type}` } };
  } catch (e) {
    return { error: { code: 'DAEMON_NOT_RUNNING', message: String(e.message ?? e) } };
  }
}

function write(obj) {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  process.stdout.write(Buffer.concat([len, body]));
}

let buf = Buffer.alloc(0);
process.stdin.on('data', async (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 4) {
    const n = buf.readUInt32LE(0);
    if (buf.length < 4 + n) {
      break;
    }
    const msg = JSON.parse(buf.subarray(4, 4 + n).toString('utf8'));
    buf = buf.subarray(4 + n);
    write(await answer(msg));
  }
});
process.stdin.on('end', () => process.exit(0));
