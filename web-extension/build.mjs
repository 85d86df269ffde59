// Builds dist/chromium/ (MV3, service worker, fixed ID through `key`), dist/firefox/
// (MV3, background scripts, gecko ID), dist/segel.js (the page library, ES module) and, with
// --tests, the unit tests into dist/unit/.
import * as esbuild from 'esbuild';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const dist = join(here, 'dist');
const withTests = process.argv.includes('--tests');

export const GECKO_ID = 'segel@segel.id';

function manifestFor(target) {
  const m = JSON.parse(readFileSync(join(here, 'manifest/manifest.json'), 'utf8'));
  if (target === 'chromium') {
    m.background = { service_worker: 'background.js' };
  } else {
    m.background = { scripts: ['background.js'] };
    m.browser_specific_settings = {
      gecko: { id: GECKO_ID, strict_min_version: '142.0', data_collection_permissions: { required: ['none'] } },
    };
    delete m.key;
    delete m.minimum_chrome_version;
  }
  return m;
}

const common = { bundle: true, target: ['chrome116', 'firefox142'], logLevel: 'warning', legalComments: 'none' };

rmSync(dist, { recursive: true, force: true });
for (const target of ['chromium', 'firefox']) {
  const out = join(dist, target);
  mkdirSync(out, { recursive: true });
  await esbuild.build({
    ...common,
    format: 'iife',
    entryPoints: {
      background: join(here, 'src/background/index.ts'),
      content: join(here, 'src/content/content.ts'),
      consent: join(here, 'src/consent/consent.ts'),
      enroll: join(here, 'src/manage/enroll.ts'),
      pin: join(here, 'src/manage/pin.ts'),
    },
    outdir: out,
  });
  for (const f of ['consent.html', 'consent.css']) {
    cpSync(join(here, 'src/consent', f), join(out, f));
  }
  for (const f of ['enroll.html', 'pin.html', 'manage.css']) {
    cpSync(join(here, 'src/manage', f), join(out, f));
  }
  cpSync(join(here, '_locales'), join(out, '_locales'), { recursive: true });
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifestFor(target), null, 2) + '\n');
}

await esbuild.build({
  ...common,
  format: 'esm',
  entryPoints: [join(here, 'src/page/segel.ts')],
  outfile: join(dist, 'segel.js'),
});

if (withTests) {
  const unit = join(here, 'test/unit');
  await esbuild.build({
    ...common,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    entryPoints: readdirSync(unit).filter((f) => f.endsWith('.test.ts')).map((f) => join(unit, f)),
    outdir: join(dist, 'unit'),
    outExtension: { '.js': '.mjs' },
  });
}
console.log(`built ${dist}/chromium, ${dist}/firefox, ${dist}/segel.js${withTests ? ', dist/unit' : ''}`);
