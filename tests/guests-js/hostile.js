// hostile-js: a connector that tries, from JavaScript, everything the sandbox must refuse, and
// returns what it observed as records `{ probe, outcome, detail }` (stream `probes`).
//
// outcome: "refused" (an error), "empty" (nothing there), "allowed" (the sandbox let it
// through: a confinement failure), or for the control probe "allowed" as expected.
// See README.md for what each probe expects.

import * as http from 'weft:plugin/http@0.2.0';
import * as logging from 'weft:plugin/log@0.2.0';
import * as webhookKeys from 'weft:plugin/webhook-keys@0.2.0';
import { connector, Page, PluginError } from './weft.js';

function describeError(e) {
  if (e && e.payload) return `${e.payload.tag}: ${typeof e.payload.val === 'string' ? e.payload.val : JSON.stringify(e.payload.val, (k, v) => (typeof v === 'bigint' ? Number(v) : v))}`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Runs `attempt`; what it returns is `[outcome, detail]`, what it throws is "refused". */
async function probe(name, attempt) {
  try {
    const [outcome, detail] = await attempt();
    return { probe: name, outcome, detail: String(detail).slice(0, 300) };
  } catch (e) {
    return { probe: name, outcome: 'refused', detail: describeError(e).slice(0, 300) };
  }
}

function rawSend(connection, url) {
  // The raw import, so the host's own error comes back untouched.
  return http.send({ connection, method: 'get', url, headers: [], body: undefined, timeoutMs: 5000 });
}

async function probes(conn) {
  const base = conn.config.base_url;
  const other = conn.config.other_connection ?? 'other';
  const offList = conn.config.off_list_url ?? 'http://127.0.0.1:9/off-list';
  return [
    await probe('env', () => {
      const env = globalThis.process?.env;
      const keys = env ? Object.keys(env) : [];
      return [keys.length ? 'allowed' : 'empty', env ? `process.env has ${keys.length} keys: ${keys.join(',')}` : `typeof process = ${typeof globalThis.process}`];
    }),
    await probe('args', () => {
      const argv = globalThis.process?.argv ?? [];
      return [argv.length ? 'allowed' : 'empty', `argv = ${JSON.stringify(argv)}`];
    }),
    await probe('file-list', () => {
      const fsLike = ['require', 'Deno', 'Bun', 'fs'].filter((n) => typeof globalThis[n] !== 'undefined');
      return [fsLike.length ? 'allowed' : 'empty', `file APIs present: ${fsLike.join(',') || 'none'}`];
    }),
    await probe('fetch-present', () => {
      // componentize-js keeps a `fetch` global when its `http` feature is left out, stubbed to
      // trap: calling it fails the whole call (read with options.probe = "fetch").
      return ['empty', `typeof fetch = ${typeof globalThis.fetch}; calling it is the separate "fetch" probe`];
    }),
    await probe('socket', () => {
      const sockets = ['WebSocket', 'XMLHttpRequest', 'Deno'].filter((n) => typeof globalThis[n] !== 'undefined');
      return [sockets.length ? 'allowed' : 'empty', `socket APIs present: ${sockets.join(',') || 'none'}`];
    }),
    await probe('other-connection', () => {
      const r = rawSend(other, base);
      return ['allowed', `send for connection \`${other}\` answered ${r.status}`];
    }),
    await probe('off-list-address', () => {
      const r = rawSend(conn.name, offList);
      return ['allowed', `${offList} answered ${r.status}`];
    }),
    await probe('off-list-host', () => {
      const r = rawSend(conn.name, 'https://weft-off-list.invalid/');
      return ['allowed', `https://weft-off-list.invalid/ answered ${r.status}`];
    }),
    await probe('other-connection-mac', () => {
      const mac = webhookKeys.mac(other, 'hmac-sha256', new TextEncoder().encode('x'));
      return ['allowed', `a MAC of ${mac.length} bytes for connection \`${other}\``];
    }),
    // Control: the connection's own allowed host answers, so the refusals above are the
    // sandbox's doing, not a broken plugin.
    await probe('control-own-host', () => {
      const r = rawSend(conn.name, base);
      return ['allowed', `${base} answered ${r.status}`];
    }),
  ];
}

export const connectorApi = connector({ http, log: logging, webhookKeys }, {
  describe() {
    return {
      name: 'hostile-js',
      version: '0.1.0',
      description: 'Tries to escape the sandbox from JavaScript and reports what it observed.',
      configSchema: {
        type: 'object',
        required: ['base_url'],
        properties: {
          base_url: { type: 'string' },
          other_connection: { type: 'string', description: 'Another connection of the flow to impersonate.' },
          off_list_url: { type: 'string', description: 'A URL off the connection\'s hosts.' },
        },
      },
      streams: [{
        name: 'probes',
        description: 'One record per probe.',
        schema: { type: 'object', required: ['probe', 'outcome'], properties: { probe: { type: 'string' }, outcome: { enum: ['refused', 'empty', 'allowed'] }, detail: { type: 'string' } } },
        primaryKey: ['probe'],
      }],
      auth: [{ kind: 'none', placement: 'basic' }, { kind: 'basic', placement: 'basic' }],
      hosts: ['{base_url}'],
    };
  },

  // Fails when any probe but the control got through.
  async check(conn) {
    const escaped = (await probes(conn)).filter((p) => p.outcome === 'allowed' && !p.probe.startsWith('control'));
    if (escaped.length) throw PluginError.internal(`escaped: ${escaped.map((p) => `${p.probe} (${p.detail})`).join('; ')}`);
  },

  // options.probe = "fetch" or "fetch-file" calls fetch() alone: expected to trap, so the
  // read fails and nothing reaches the upstream. Any other read runs every other probe.
  async read(conn, req) {
    const only = req.options.probe;
    if (only === 'fetch' || only === 'fetch-file') {
      const url = only === 'fetch' ? conn.config.base_url : 'file:///etc/passwd';
      const answer = await fetch(url);
      return Page.last([{ probe: only, outcome: 'allowed', detail: `fetch(${url}) answered ${answer.status}` }]);
    }
    return Page.last(await probes(conn));
  },
});
