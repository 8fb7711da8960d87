// js-helpdesk: a Zendesk connector written in JavaScript — the `weft plugin new --lang js`
// connector template grown to three streams.
//
// - `users` and `tickets`: full reads with cursor pagination (`/api/v2/{kind}.json?page[size]=N
//   &page[after]=C`), incremental reads through the cursor-based export
//   (`/api/v2/incremental/{kind}/cursor.json`, `start_time=0` then `cursor`, until
//   `end_of_stream`; the last cursor is where the next run starts).
// - `organizations`: full reads only (Zendesk exports them by time, not by cursor).
// - Writes: `users` by upsert (`users/create_or_update`), one request per record.
// - Webhooks: deliveries signed with X-Zendesk-Webhook-Signature are verified with the host's
//   MAC over the connection's webhook secret; unsigned ones are refused.

import * as http from 'weft:plugin/http@0.2.0';
import * as logging from 'weft:plugin/log@0.2.0';
import * as webhookKeys from 'weft:plugin/webhook-keys@0.2.0';
import {
  connector, joinUrl, log, Page, PluginError, Verification, WriteOutcome, base64, constantTimeEqual,
} from './weft.js';

const MAX_PAGE = 100;
const MAX_EXPORT_PAGE = 1000;
const MAX_SIGNATURE_AGE_MS = 5 * 60 * 1000;

const nullable = (type, extra = {}) => ({ type: [type, 'null'], ...extra });
const TIMESTAMPS = {
  created_at: { type: 'string', format: 'date-time' },
  updated_at: { type: 'string', format: 'date-time' },
};

/** The streams: each Zendesk object kind, its schema, and whether it has a cursor export. */
const STREAMS = {
  users: {
    description: 'Users (end users, agents, admins); incremental through the cursor-based user export.',
    export: true,
    properties: {
      id: { type: 'integer' },
      name: nullable('string'),
      email: nullable('string', { format: 'email' }),
      phone: nullable('string'),
      role: nullable('string'),
      external_id: nullable('string'),
      organization_id: nullable('integer'),
      active: { type: 'boolean' },
      ...TIMESTAMPS,
    },
  },
  tickets: {
    description: 'Tickets; incremental through the cursor-based ticket export.',
    export: true,
    properties: {
      id: { type: 'integer' },
      subject: nullable('string'),
      status: nullable('string'),
      priority: nullable('string'),
      type: nullable('string'),
      requester_id: nullable('integer'),
      assignee_id: nullable('integer'),
      organization_id: nullable('integer'),
      external_id: nullable('string'),
      tags: { type: 'array', items: { type: 'string' } },
      ...TIMESTAMPS,
    },
  },
  organizations: {
    description: 'Organizations; full reads only.',
    export: false,
    properties: {
      id: { type: 'integer' },
      name: nullable('string'),
      external_id: nullable('string'),
      domain_names: { type: 'array', items: { type: 'string' } },
      ...TIMESTAMPS,
    },
  },
};

function api(conn, path) {
  return joinUrl(conn.configString('base_url'), `api/v2/${path}`);
}

export const connectorApi = connector({ http, log: logging, webhookKeys }, {
  describe() {
    return {
      name: 'js-helpdesk',
      version: '0.1.0',
      description: 'Zendesk users, tickets and organizations, in JavaScript: cursor pagination, incremental exports, user upserts, signed webhooks.',
      configSchema: {
        type: 'object',
        required: ['base_url'],
        properties: {
          base_url: { type: 'string', description: 'The API root, e.g. https://acme.zendesk.com' },
        },
      },
      streams: Object.entries(STREAMS).map(([name, s]) => ({
        name,
        description: s.description,
        schema: { type: 'object', required: ['id'], properties: s.properties },
        primaryKey: ['id'],
        cursorField: s.export ? 'updated_at' : undefined,
        syncModes: s.export ? ['full', 'incremental'] : ['full'],
        writeModes: name === 'users' ? ['upsert'] : [],
      })),
      auth: [{ kind: 'basic', placement: 'basic' }],
      hosts: ['{base_url}'],
      rateLimit: { requests: 700, perMs: 60_000 },
    };
  },

  check(conn) {
    conn.get(api(conn, 'users/me.json')).sendJson();
  },

  read(conn, req) {
    const stream = STREAMS[req.stream];
    if (!stream) throw PluginError.config(`js-helpdesk has no stream \`${req.stream}\` (it has: ${Object.keys(STREAMS).join(', ')})`);
    const state = req.state ?? {};
    if (typeof state !== 'object' || Array.isArray(state)) {
      throw PluginError.config(`the stored cursor ${req.cursor} is not one js-helpdesk gave out; reset the flow's cursor`);
    }
    if (req.mode === 'incremental' && !stream.export) {
      throw PluginError.config(`\`${req.stream}\` reads in full only`);
    }
    return req.mode === 'incremental'
      ? readChanges(conn, req.stream, state, req.pageSize)
      : readFull(conn, req.stream, state, req.pageSize);
  },

  write(conn, req) {
    if (req.stream !== 'users' || req.mode !== 'upsert') {
      throw PluginError.config('js-helpdesk writes the `users` stream by upsert only');
    }
    return req.records.map((user) => {
      const answer = conn.post(api(conn, 'users/create_or_update.json')).json({ user }).send();
      if (answer.status === 422) return WriteOutcome.failed(PluginError.invalidRecord(answer.text()));
      const body = answer.errorForStatus().json();
      return answer.status === 201 ? WriteOutcome.created(body.user.id) : WriteOutcome.updated(body.user.id);
    });
  },

  verify(conn, req) {
    const signature = req.header('x-zendesk-webhook-signature');
    const timestamp = req.header('x-zendesk-webhook-signature-timestamp');
    if (!signature || !timestamp) return Verification.rejected('the delivery is not signed');
    const message = new Uint8Array([...new TextEncoder().encode(timestamp), ...req.body]);
    if (!constantTimeEqual(base64(conn.mac('hmac-sha256', message)), signature.trim())) {
      return Verification.rejected('the signature does not match the timestamp and body');
    }
    if (!(Math.abs(Date.now() - Date.parse(timestamp)) <= MAX_SIGNATURE_AGE_MS)) {
      return Verification.rejected('the delivery was signed more than five minutes from now');
    }
    const event = JSON.parse(req.text());
    // `zen:event-type:user.created` → stream `users`, action `created`.
    const [, kind = '', action = event.type] = /^zen:event-type:([a-z_]+)\.(.+)$/.exec(event.type ?? '') ?? [];
    return Verification.accepted([{
      id: event.id,
      stream: `${kind}s` in STREAMS ? `${kind}s` : 'users',
      action,
      record: event.detail ?? {},
      occurredAt: event.time,
    }]);
  },

  subscribe() {
    throw PluginError.config('js-helpdesk does not register webhooks; create the webhook in Zendesk and set the connection\'s webhook_secret to its signing secret');
  },

  unsubscribe() {
    throw PluginError.config('js-helpdesk does not register webhooks; delete the webhook in Zendesk');
  },
});

function readFull(conn, kind, state, pageSize) {
  const answer = conn.get(api(conn, `${kind}.json`))
    .query('page[size]', Math.min(pageSize ?? MAX_PAGE, MAX_PAGE))
    .query('page[after]', state.after)
    .send();
  refusedCursor(answer, state.after);
  const body = answer.errorForStatus().json();
  const { has_more: hasMore, after_cursor: after } = body.meta ?? {};
  return hasMore && after ? Page.more(body[kind], { after }) : Page.last(body[kind]);
}

function readChanges(conn, kind, state, pageSize) {
  const request = conn.get(api(conn, `incremental/${kind}/cursor.json`))
    .query('per_page', Math.min(pageSize ?? MAX_EXPORT_PAGE, MAX_EXPORT_PAGE));
  if (state.cursor) request.query('cursor', state.cursor);
  else request.query('start_time', 0);
  const answer = request.send();
  refusedCursor(answer, state.cursor);
  const body = answer.errorForStatus().json();
  const next = { cursor: body.after_cursor ?? state.cursor };
  log.debug('export page', { stream: kind, records: body[kind].length, end: body.end_of_stream });
  return body.end_of_stream ? Page.last(body[kind], next) : Page.more(body[kind], next);
}

function refusedCursor(answer, cursor) {
  if (answer.status === 400 && cursor) {
    throw PluginError.config(`Zendesk refused the stored cursor (${answer.text()}); reset the flow's cursor`);
  }
}
