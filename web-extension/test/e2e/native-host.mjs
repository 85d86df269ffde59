#!/usr/bin/env node
// TEST STAND-IN for `segel native-host` (not in the daemon's committed work yet). It speaks
// the browser's native-messaging framing (32-bit native-endian length + UTF-8 JSON) and the
// protocol of `segel native-host` (the extension's src/background/transport.ts):
//   {"type":"endpoint"}                                   → {"type":"endpoint","url","credential"} (from `segel endpoint --json`)
//   {"type":"request",id,method,path,site_origin?,body?}  → {"type":"response",id,"status","body"} (relayed over HTTPS)
//   failures                                              → {"type":"error","code","message"}
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
  const body = msg.body === undefined ? undefined : JSON.stringify(msg.body);
  if (typeof msg.site_origin === 'string') {
    headers['X-Segel-Site-Origin'] = msg.site_origin;
  }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: url.port, path: msg.path, method: msg.method, headers, ca: readFileSync(ep.ca_cert) },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let value;
          try {
            value = JSON.parse(text);
          } catch {
            value = text;
          }
          resolve({ type: 'response', id: msg.id, status: res.statusCode, body: value });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
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
      return { type: 'endpoint', url: ep.url, credential: ep.credential };
    }
    if (msg.type === 'request' && typeof msg.path === 'string' && msg.path.startsWith('/v1/')) {
      return await relay(ep, msg);
    }
    return { type: 'error', code: 'BAD_REQUEST', message: `unknown message type ${msg.type}` };
  } catch (e) {
    return { type: 'error', code: 'DAEMON_NOT_RUNNING', message: String(e.message ?? e) };
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
