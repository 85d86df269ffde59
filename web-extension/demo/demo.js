// The demo procurement page: every call of segel.js, with its result or error code shown.
import Segel from './segel.js';

const $ = (id) => document.getElementById(id);
const out = $('out');

function show(label, value) {
  out.textContent = `${label}\n${JSON.stringify(value, null, 2)}\n\n` + out.textContent;
}

async function run(label, fn) {
  try {
    show(label, await fn());
  } catch (e) {
    show(`${label} ✗`, { code: e.code, message: e.message, retriesLeft: e.retriesLeft });
  }
}

$('btn-status').addEventListener('click', () => run('status', () => Segel.status()));

$('btn-certs').addEventListener('click', () =>
  run('certificates', async () => {
    const certs = await Segel.certificates({ purpose: $('purpose').value });
    const sel = $('cert');
    sel.replaceChildren(
      ...certs.map((c) => {
        const o = document.createElement('option');
        o.value = c.certificate;
        o.textContent = `${c.subject} (${c.token})`;
        return o;
      }),
    );
    return certs.map(({ certificate, ...rest }) => ({ ...rest, certificate: `${certificate.slice(0, 24)}…` }));
  }),
);

$('btn-sign').addEventListener('click', () =>
  run('sign', async () => {
    const bytes = new TextEncoder().encode($('doc-text').value);
    const format = $('format').value;
    const common = { certificate: $('cert').value, digestAlgorithm: 'SHA-256', format, documentName: $('doc-name').value };
    if (format === 'cms') {
      return Segel.sign({ ...common, data: bytes });
    }
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return Segel.sign({ ...common, digest });
  }),
);

/** A committee certificate as base64 DER (PEM armour removed). */
function recipient() {
  return $('recipient')
    .value.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
    .replace(/\s+/g, '');
}

$('btn-seal').addEventListener('click', () =>
  run('seal', () => Segel.seal({ certificate: $('cert').value, recipients: [recipient()] })),
);

$('btn-open').addEventListener('click', () => {
  Segel.on('progress', (e) => show('progress event', e));
  return run('open', () => Segel.open({ certificate: $('cert').value }));
});

$('btn-events').addEventListener('click', () => {
  Segel.on('token', (e) => show('token event', e));
  Segel.on('progress', (e) => show('progress event', e));
  show('listening', { events: ['token', 'progress'] });
});
