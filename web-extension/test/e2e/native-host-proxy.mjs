#!/usr/bin/env node
// Runs the real `segel native-host` for the browser, and notes which messages the extension
// sent (type, method, path; never a body) in SEGEL_E2E_HOST_LOG so tests can tell which path a
// call took. Bytes pass through unchanged.
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const child = spawn(process.env.SEGEL_BIN ?? 'segel', ['native-host', ...process.argv.slice(2)], { stdio: ['pipe', 'inherit', 'inherit'] });
child.on('exit', (code) => process.exit(code ?? 1));
let buf = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  child.stdin.write(chunk);
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
    const n = buf.readUInt32LE(0);
    try {
      const m = JSON.parse(buf.subarray(4, 4 + n).toString('utf8'));
      if (process.env.SEGEL_E2E_HOST_LOG) {
        appendFileSync(process.env.SEGEL_E2E_HOST_LOG, `${JSON.stringify({ type: m.type, method: m.method, path: m.path })}\n`);
      }
    } catch {
      /* the host answers malformed input itself */
    }
    buf = buf.subarray(4 + n);
  }
});
process.stdin.on('end', () => child.stdin.end());
