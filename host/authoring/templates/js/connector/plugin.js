// {{name}}: a weft connector written in JavaScript.
//
// As generated it reads Zendesk users (the `users` stream), which `weft sandbox` emulates, so
// `weft plugin test` passes before you change anything. To connect another API, change what
// the comments marked CHANGE point at: the stream list in `describe`, the URLs and the
// pagination in `readFull`/`readChanges`, and the auth method.
//
// `weft.js` (written next to this file by `weft plugin new`) turns the plain handlers below
// into the contract's `connector-api`; `wit/` holds the contract itself.

import * as http from 'weft:plugin/http@0.2.0';
import * as logging from 'weft:plugin/log@0.2.0';
import * as webhookKeys from 'weft:plugin/webhook-keys@0.2.0';
import {
  connector, joinUrl, log, Page, PluginError, Verification, WriteOutcome, base64, constantTimeEqual,
} from './weft.js';

// CHANGE: the largest page the API serves.
const MAX_PAGE = 100;
// Zendesk's incremental export serves up to 1,000 records a page.
const MAX_EXPORT_PAGE = 1000;
// Signed webhook deliveries older or newer than this are refused (a replay).
const MAX_SIGNATURE_AGE_MS = 5 * 60 * 1000;

// CHANGE: the fields of one record, as JSON Schema. Flows' field references are checked
// against it before anything runs.
const USER_SCHEMA = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'integer' },
    name: { type: ['string', 'null'] },
    email: { type: ['string', 'null'], format: 'email' },
    phone: { type: ['string', 'null'] },
    role: { type: ['string', 'null'] },
    external_id: { type: ['string', 'null'] },
    organization_id: { type: ['integer', 'null'] },
    active: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
};

/** `{base_url}/api/v2/{path}`: every URL the connector calls. */
function api(conn, path) {
  return joinUrl(conn.configString('base_url'), `api/v2/${path}`);
}

export const connectorApi = connector({ http, log: logging, webhookKeys }, {
  describe() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Zendesk users: cursor-paginated full reads, incremental export, upserts.',
      // The connection's `config` in a flow: `config = { base_url = "https://acme.zendesk.com" }`.
      configSchema: {
        type: 'object',
        required: ['base_url'],
        properties: {
          base_url: { type: 'string', description: 'The API root, e.g. https://acme.zendesk.com' },
        },
      },
      streams: [{
        name: 'users',
        description: 'Users; incremental through the cursor-based user export.',
        schema: USER_SCHEMA,
        primaryKey: ['id'],
        // Declaring a cursor field allows `sync = "incremental"` in a flow's read step.
        cursorField: 'updated_at',
        writeModes: ['upsert'],
      }],
      // CHANGE: how the credential is sent. The host adds it to every request; the plugin
      // never sees it. Basic: `auth = { kind = "basic", username = "...", password = "..." }`.
      // An API key in a header would be { kind: 'api-key', placement: { header: { name: 'X-Api-Key', value: '{token}' } } }.
      auth: [{ kind: 'basic', placement: 'basic' }],
      // The hosts a connection may reach: here whatever URL its `base_url` names.
      hosts: ['{base_url}'],
      // The vendor's documented limit per credential (Zendesk Enterprise: 700 a minute).
      rateLimit: { requests: 700, perMs: 60_000 },
    };
  },

  check(conn) {
    conn.get(api(conn, 'users/me.json')).sendJson();
  },

  read(conn, req) {
    if (req.stream !== 'users') throw PluginError.config(`{{name}} has no stream \`${req.stream}\``);
    // `req.state` is what the previous page returned with Page.more/Page.last, or undefined.
    const state = req.state ?? {};
    if (typeof state !== 'object' || Array.isArray(state)) {
      throw PluginError.config(`the stored cursor ${req.cursor} is not one {{name}} gave out; reset the flow's cursor`);
    }
    return req.mode === 'incremental' ? readChanges(conn, state, req.pageSize) : readFull(conn, state, req.pageSize);
  },

  write(conn, req) {
    if (req.stream !== 'users' || req.mode !== 'upsert') {
      throw PluginError.config('{{name}} writes the `users` stream by upsert only');
    }
    // CHANGE: one request per record keeps the example plain; a bulk endpoint is faster.
    return req.records.map((user) => {
      const answer = conn.post(api(conn, 'users/create_or_update.json')).json({ user }).send();
      if (answer.status === 422) return WriteOutcome.failed(PluginError.invalidRecord(answer.text()));
      const body = answer.errorForStatus().json();
      return answer.status === 201 ? WriteOutcome.created(body.user.id) : WriteOutcome.updated(body.user.id);
    });
  },

  // Zendesk signs each delivery: base64(HMAC-SHA256(timestamp + body)) under the webhook's
  // signing secret. The host computes the MAC with the connection's `webhook_secret`, so the
  // secret never enters the plugin; without a valid signature the delivery is refused.
  verify(conn, req) {
    const signature = req.header('x-zendesk-webhook-signature');
    const timestamp = req.header('x-zendesk-webhook-signature-timestamp');
    if (!signature || !timestamp) return Verification.rejected('the delivery is not signed');
    const message = new Uint8Array([...new TextEncoder().encode(timestamp), ...req.body]);
    if (!constantTimeEqual(base64(conn.mac('hmac-sha256', message)), signature.trim())) {
      return Verification.rejected('the signature does not match the timestamp and body');
    }
    const age = Date.now() - Date.parse(timestamp);
    if (!(Math.abs(age) <= MAX_SIGNATURE_AGE_MS)) {
      return Verification.rejected('the delivery was signed more than five minutes from now');
    }
    const event = JSON.parse(req.text());
    return Verification.accepted([{
      id: event.id,
      stream: 'users',
      action: event.type,
      record: event.detail ?? {},
      occurredAt: event.time,
    }]);
  },

  subscribe() {
    throw PluginError.config('{{name}} does not register webhooks; create the webhook in Zendesk and set the connection\'s webhook_secret to its signing secret');
  },

  unsubscribe() {
    throw PluginError.config('{{name}} does not register webhooks; delete the webhook in Zendesk');
  },
});

/**
 * Full reads walk the list endpoint with cursor pagination:
 * `GET /api/v2/users.json?page[size]=N&page[after]=C` answers
 * `{"users": [...], "meta": {"has_more": true, "after_cursor": "..."}}`.
 */
function readFull(conn, state, pageSize) {
  const answer = conn.get(api(conn, 'users.json'))
    .query('page[size]', Math.min(pageSize ?? MAX_PAGE, MAX_PAGE))
    .query('page[after]', state.after)
    .send();
  refusedCursor(answer, state.after);
  const body = answer.errorForStatus().json();
  const { has_more: hasMore, after_cursor: after } = body.meta ?? {};
  return hasMore && after ? Page.more(body.users, { after }) : Page.last(body.users);
}

/**
 * Incremental reads use the cursor-based export: the first run starts at `start_time=0`, every
 * page carries `after_cursor`, and the last page (`end_of_stream`) leaves its cursor as the
 * flow's state, so the next run asks only for users changed since.
 * (Zendesk holds back the last minute of changes and refuses a too recent start_time.)
 */
function readChanges(conn, state, pageSize) {
  const request = conn.get(api(conn, 'incremental/users/cursor.json'))
    .query('per_page', Math.min(pageSize ?? MAX_EXPORT_PAGE, MAX_EXPORT_PAGE));
  if (state.cursor) request.query('cursor', state.cursor);
  else request.query('start_time', 0);
  const answer = request.send();
  refusedCursor(answer, state.cursor);
  const body = answer.errorForStatus().json();
  const next = { cursor: body.after_cursor ?? state.cursor };
  log.debug('export page', { records: body.users.length, end: body.end_of_stream });
  return body.end_of_stream ? Page.last(body.users, next) : Page.more(body.users, next);
}

/** A cursor the API refuses (400) is the flow's to reset, not a failure to retry. */
function refusedCursor(answer, cursor) {
  if (answer.status === 400 && cursor) {
    throw PluginError.config(`Zendesk refused the stored cursor (${answer.text()}); reset the flow's cursor`);
  }
}
