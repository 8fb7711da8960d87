// weft.js: helpers for weft plugins written in JavaScript, built with componentize-js.
//
// A plugin module imports the host interfaces its world has and hands them to `connector`
// or `transform` with a plain object of handlers; what that returns is the module's export:
//
//   import * as http from 'weft:plugin/http@0.2.0';
//   import * as logging from 'weft:plugin/log@0.2.0';
//   import * as state from 'weft:plugin/state@0.2.0';
//   import * as webhookKeys from 'weft:plugin/webhook-keys@0.2.0';
//   import { connector, Page, PluginError } from './weft.js';
//
//   export const connectorApi = connector({ http, log: logging, state, webhookKeys }, {
//     describe() { return { name: 'my-api', version: '0.1.0', streams: [...], ... }; },
//     read(conn, req) { const body = conn.get(url).query('page', 2).sendJson(); ... },
//   });
//
// (This file imports no host interface itself: a transform's world has no `http`, and
// componentize-js refuses a module importing an interface its world lacks.)
//
// What the glue does for the handlers:
// - JSON crosses the contract as text; handlers see and return plain values: `conn.config`,
//   `req.options`, `req.records`, schemas, records and events are objects, not strings.
// - Errors: throw a `PluginError` (`PluginError.config('...')`, ...). Any other exception
//   becomes an `internal` error with its message instead of a trap, so the run says why.
// - Cursors: return `Page.more(records, state)` / `Page.last(records, state)` with any
//   JSON-able state; the next call sees it again as `req.state`.
// - Handlers may be `async`; componentize-js runs the event loop until they settle. Host
//   calls (`send`, `state`, `log`) are synchronous.
//
// componentize-js conventions this relies on (0.23): an export interface is a named export in
// camelCase (`connectorApi`, `transformApi`); record fields are camelCase; enums are their
// WIT names as strings ('get', 'hmac-sha256'); variants are `{ tag, val }`; `option<T>` is
// `T | undefined`; `u64` is a BigInt; `list<u8>` is a Uint8Array. A `result` export returns
// the ok value, and a thrown value becomes the err value: its own `payload` property if it
// has one, the value itself otherwise, except that a plain `Error` traps. A host call that
// answers `err` throws a `ComponentError` whose `payload` is the error variant.

const BODY_EXCERPT = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The host interfaces handed to `connector`/`transform`, for the helpers below. */
let host = {};

// ---------------------------------------------------------------- errors

/**
 * An error the host can act on: it retries `rateLimited`, `unavailable`, `timeout` and 5xx
 * `upstream`, logs `invalidRecord` and carries on with the batch, and fails the step on the
 * rest. `payload` is the contract's `plugin-error` variant.
 */
export class PluginError extends Error {
  constructor(tag, val, message) {
    super(message ?? (typeof val === 'string' ? val : JSON.stringify(val, bigintJson)));
    this.name = `PluginError(${tag})`;
    this.payload = { tag, val };
  }

  /** The connection or step config is wrong: say which field and what it should be. */
  static config(message) { return new PluginError('config', String(message)); }
  /** The upstream refused the credential; an operator has to fix the connection. */
  static auth(message) { return new PluginError('auth', String(message)); }
  /** The upstream asked to slow down; `retryAfterMs` when it said how long. */
  static rateLimited(retryAfterMs, message) {
    const ms = retryAfterMs == null ? undefined : BigInt(Math.max(0, Math.round(retryAfterMs)));
    return new PluginError('rate-limited', { retryAfterMs: ms, message: String(message ?? '') },
      `rate limited${ms === undefined ? '' : ` (retry after ${ms} ms)`}: ${message ?? ''}`);
  }
  /** An upstream error status with the start of its body (bytes or text). */
  static upstream(status, body) {
    const bodyExcerpt = excerpt(body);
    return new PluginError('upstream', { status, bodyExcerpt }, `upstream answered ${status}: ${bodyExcerpt}`);
  }
  /** Only this record is bad: the host logs it and carries on with the batch. */
  static invalidRecord(message) { return new PluginError('invalid-record', String(message)); }
  /** The upstream could not be reached (connection refused or reset, DNS, TLS). */
  static unavailable(message) { return new PluginError('unavailable', String(message)); }
  /** The host refused an outbound request under the connection's egress policy. */
  static denied(message) { return new PluginError('denied', String(message)); }
  static timeout(message) { return new PluginError('timeout', String(message)); }
  /** A bug or an unexpected state in the plugin. */
  static internal(message) { return new PluginError('internal', String(message)); }

  /** Whether the host retries the call that failed with this error. */
  get retryable() {
    const { tag, val } = this.payload;
    return ['rate-limited', 'unavailable', 'timeout'].includes(tag)
      || (tag === 'upstream' && (val.status === 408 || val.status >= 500));
  }
}

/** Any thrown value as a PluginError: ours as they are, the rest as `internal`. */
function asPluginError(e) {
  if (e instanceof PluginError) return e;
  if (e && e.payload && typeof e.payload.tag === 'string') {
    // A host error variant no helper mapped (a state or MAC refusal used directly).
    return PluginError.internal(`host call failed: ${e.payload.tag}: ${JSON.stringify(e.payload.val, bigintJson)}`);
  }
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return PluginError.internal(text);
}

function bigintJson(_key, value) {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** The start of a body as text: enough to see the vendor's error code. */
export function excerpt(body) {
  const text = typeof body === 'string' ? body : decoder.decode(body ?? new Uint8Array());
  return text.length > BODY_EXCERPT ? `${text.slice(0, BODY_EXCERPT)}…` : text;
}

// ---------------------------------------------------------------- http

/** The contract's `http-error` as the plugin error it means. */
function fromHttpError(e) {
  const { tag, val } = e?.payload ?? {};
  switch (tag) {
    case 'denied': return PluginError.denied(val);
    case 'timeout': return PluginError.timeout(val);
    case 'transport': return PluginError.unavailable(val);
    case 'too-large': return PluginError.internal(`the response exceeded the host's limit of ${val} bytes`);
    case 'auth': return PluginError.auth(val);
    case 'invalid-request': return PluginError.internal(`invalid request: ${val}`);
    default: return asPluginError(e);
  }
}

/** Percent-encodes everything but RFC 3986's unreserved characters. */
export function percentEncode(text) {
  return encodeURIComponent(String(text)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `base` and `path` joined with exactly one `/`: `joinUrl('https://x/api/', '/users')`. */
export function joinUrl(base, path) {
  return `${String(base).replace(/\/+$/, '')}/${String(path).replace(/^\/+/, '')}`;
}

/** A request being built; see `Connection.get` and friends. Nothing is sent until `send`. */
export class RequestBuilder {
  constructor(conn, method, url) {
    this.conn = conn;
    this.method = method;
    this.baseUrl = url;
    this.params = [];
    this.headers = [];
    this.bytes = undefined;
    this.timeoutMs = undefined;
  }

  /** Adds a query parameter, percent-encoded; `undefined` and `null` add nothing. */
  query(name, value) {
    if (value !== undefined && value !== null) this.params.push([name, String(value)]);
    return this;
  }

  /** Adds a header. Host, Authorization, Cookie and Proxy-* are refused: the host owns them. */
  header(name, value) {
    this.headers.push([name, String(value)]);
    return this;
  }

  /** A JSON body, with `Content-Type: application/json`. */
  json(value) {
    return this.body(JSON.stringify(value), 'application/json');
  }

  /** A raw body (text or bytes), with its content type when given. */
  body(body, contentType) {
    this.bytes = typeof body === 'string' ? encoder.encode(body) : body;
    if (contentType) this.header('Content-Type', contentType);
    return this;
  }

  /** At most the connection's maximum; the host never waits longer than that. */
  timeout(ms) {
    this.timeoutMs = ms;
    return this;
  }

  /** The URL with the query parameters appended. */
  url() {
    let url = this.baseUrl;
    for (const [name, value] of this.params) {
      url += `${url.includes('?') ? '&' : '?'}${percentEncode(name)}=${percentEncode(value)}`;
    }
    return url;
  }

  /** Sends the request. Any status is a response; see `Response.errorForStatus`. */
  send() {
    let answer;
    try {
      answer = requireHost('http').send({
        connection: this.conn.name,
        method: this.method,
        url: this.url(),
        headers: this.headers,
        body: this.bytes,
        timeoutMs: this.timeoutMs,
      });
    } catch (e) {
      throw fromHttpError(e);
    }
    return new Response(answer.status, answer.headers, answer.body);
  }

  /** Sends, turns error statuses into PluginErrors and parses the JSON body. */
  sendJson() {
    return this.send().errorForStatus().json();
  }
}

/** An upstream response: `status`, `headers` (`[name, value]` pairs), `body` (bytes). */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** A header's value, matched case-insensitively; undefined when absent. */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([k]) => k.toLowerCase() === lower)?.[1];
  }

  get ok() { return this.status >= 200 && this.status < 300; }

  /** The wait `Retry-After` asks for, in milliseconds (seconds or an HTTP date). */
  retryAfterMs() {
    const value = this.header('retry-after')?.trim();
    if (!value) return undefined;
    const seconds = Number(value);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
  }

  /**
   * The response itself for 2xx and 3xx; otherwise the matching error: 401 and 403 `auth`,
   * 429 `rateLimited` with `Retry-After`, every other status `upstream` with the body's start.
   */
  errorForStatus() {
    if (this.status < 400) return this;
    if (this.status === 401 || this.status === 403) {
      throw PluginError.auth(`upstream answered ${this.status}: ${excerpt(this.body)}`);
    }
    if (this.status === 429) throw PluginError.rateLimited(this.retryAfterMs(), excerpt(this.body));
    throw PluginError.upstream(this.status, this.body);
  }

  text() { return decoder.decode(this.body); }

  /** The body parsed as JSON; an `upstream` error quoting the body when it is not JSON. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new PluginError('upstream', { status: this.status, bodyExcerpt: `unexpected response body (${e.message}): ${excerpt(this.body)}` });
    }
  }
}

// ---------------------------------------------------------------- connection

/** The connection a call runs for: its name (the handle `http.send` needs) and config. */
export class Connection {
  constructor(name, config) {
    this.name = name;
    /** The connection's non-secret configuration, parsed. */
    this.config = config;
  }

  /** A string field of the config, or a config error naming the connection and the field. */
  configString(field) {
    const value = this.config?.[field];
    if (typeof value !== 'string' || value === '') {
      throw PluginError.config(`connection \`${this.name}\` needs a string \`${field}\` in its config`);
    }
    return value;
  }

  request(method, url) { return new RequestBuilder(this, method, url); }
  get(url) { return this.request('get', url); }
  head(url) { return this.request('head', url); }
  post(url) { return this.request('post', url); }
  put(url) { return this.request('put', url); }
  patch(url) { return this.request('patch', url); }
  delete(url) { return this.request('delete', url); }

  /** Non-secret values from the connection's token response (`instance_url`, ...). */
  tokenInfo() {
    try {
      return Object.fromEntries(requireHost('http').tokenInfo(this.name));
    } catch (e) {
      throw fromHttpError(e);
    }
  }

  /**
   * The MAC of `message` (bytes or text) under the connection's webhook secret, computed by
   * the host: `algorithm` is 'hmac-sha256' or 'hmac-sha1'. A connection without a secret is
   * a `config` error saying how to set one.
   */
  mac(algorithm, message) {
    const bytes = typeof message === 'string' ? encoder.encode(message) : message;
    try {
      return requireHost('webhookKeys').mac(this.name, algorithm, bytes);
    } catch (e) {
      const { tag, val } = e?.payload ?? {};
      if (tag === 'not-own-connection') throw PluginError.denied(val);
      if (tag === 'no-secret' || tag === 'secret-unavailable') throw PluginError.config(val);
      throw asPluginError(e);
    }
  }
}

// ---------------------------------------------------------------- state

function stateCall(f) {
  try {
    return f(requireHost('state'));
  } catch (e) {
    const { tag, val } = e?.payload ?? {};
    if (tag === undefined) throw asPluginError(e);
    throw PluginError.internal(`plugin state refused: ${tag}${val === undefined ? '' : ` (${val})`}`);
  }
}

/**
 * The plugin's small key/value store (per plugin, connection and flow), holding JSON values:
 * subscription ids, watermarks. Up to 64 KiB a value and 1,000 keys by default.
 */
export const state = {
  get(key) {
    const bytes = stateCall((s) => s.get(key));
    return bytes === undefined ? undefined : JSON.parse(decoder.decode(bytes));
  },
  set(key, value) { stateCall((s) => s.set(key, encoder.encode(JSON.stringify(value)))); },
  delete(key) { stateCall((s) => s.delete(key)); },
};

// ---------------------------------------------------------------- log

function emit(level, message, fields) {
  const pairs = Object.entries(fields ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
  host.log?.log(level, String(message), pairs);
}

/** Log lines into the host's tracing, attributed to the plugin and run. Never log secrets or record bodies. */
export const log = {
  trace: (message, fields) => emit('trace', message, fields),
  debug: (message, fields) => emit('debug', message, fields),
  info: (message, fields) => emit('info', message, fields),
  warn: (message, fields) => emit('warn', message, fields),
  error: (message, fields) => emit('error', message, fields),
};

// ---------------------------------------------------------------- cursors and pages

/** Cursors are JSON text of whatever state the connector needs to resume. */
export const cursor = {
  encode(value) { return JSON.stringify(value); },
  /** The state in `text`, or a config error when this connector did not write it. */
  decode(text) {
    if (text === undefined || text === null || text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw PluginError.config(`the stored cursor \`${text}\` is not one this connector understands (${e.message}); reset the flow's cursor to read from the beginning`);
    }
  },
};

/** What `read` returns. */
export const Page = {
  /** More pages follow; the next read resumes from `state`. */
  more(records, state, total) { return { records, state, done: false, total }; },
  /** The stream's last page; `state` (optional) is where the next run starts. */
  last(records, state, total) { return { records, state, done: true, total }; },
};

/** One per record of a write batch, in the batch's order. */
export const WriteOutcome = {
  created: (id) => ({ status: 'created', id }),
  updated: (id) => ({ status: 'updated', id }),
  unchanged: (id) => ({ status: 'unchanged', id }),
  deleted: (id) => ({ status: 'deleted', id }),
  /** The record was not written; `error` is a PluginError (usually `invalidRecord`). */
  failed: (error) => ({ status: 'failed', error }),
};

/** What `verify` returns. */
export const Verification = {
  /** Genuine: events `{ id, stream, action, record, occurredAt? }` to process. */
  accepted: (events) => ({ tag: 'accepted', val: events }),
  /** A vendor handshake: answer `{ status, headers?, body? }`, process nothing. */
  handshake: (reply) => ({ tag: 'handshake', val: reply }),
  /** Not genuine, with the reason. */
  rejected: (reason) => ({ tag: 'rejected', val: String(reason) }),
};

/** Bytes as standard base64 (what most vendors' signatures use). */
export function base64(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

/** Compares two strings without stopping at the first difference (for signatures). */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

// ---------------------------------------------------------------- the glue

function requireHost(name) {
  const iface = host[name];
  if (!iface) {
    throw PluginError.internal(`this plugin did not hand \`${name}\` to connector()/transform(); import it from 'weft:plugin/...' and pass it`);
  }
  return iface;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw PluginError.internal(`the host sent ${what} that is not JSON: ${e.message}`);
  }
}

function toJson(value, what) {
  if (typeof value === 'string') return value;
  const text = JSON.stringify(value ?? {}, bigintJson);
  if (text === undefined) throw PluginError.internal(`${what} cannot be written as JSON`);
  return text;
}

/** Runs a handler, turning anything it throws into a PluginError (never a trap). */
async function guarded(f) {
  try {
    return await f();
  } catch (e) {
    throw asPluginError(e);
  }
}

function placement(p) {
  if (p === undefined || p === 'basic') return { tag: 'basic' };
  if (p.tag) return p;
  if (p.header) return { tag: 'header', val: { name: p.header.name, value: p.header.value ?? '{token}' } };
  if (p.query) return { tag: 'query', val: p.query };
  throw PluginError.internal(`unknown credential placement ${JSON.stringify(p)}; use 'basic', { header: { name, value } } or { query: 'param' }`);
}

function connectorInfo(info) {
  return {
    name: info.name,
    version: info.version,
    description: info.description ?? '',
    configSchema: toJson(info.configSchema ?? { type: 'object' }, 'configSchema'),
    streams: (info.streams ?? []).map((s) => ({
      name: s.name,
      description: s.description ?? '',
      schema: toJson(s.schema ?? { type: 'object' }, `the schema of stream ${s.name}`),
      primaryKey: s.primaryKey ?? [],
      cursorField: s.cursorField,
      syncModes: s.syncModes ?? (s.cursorField ? ['full', 'incremental'] : ['full']),
      writeModes: s.writeModes ?? [],
    })),
    auth: (info.auth ?? []).map((a) => ({ kind: a.kind, placement: placement(a.placement), tokenUrl: a.tokenUrl })),
    hosts: info.hosts ?? [],
    rateLimit: info.rateLimit && { requests: info.rateLimit.requests, perMs: BigInt(info.rateLimit.perMs) },
  };
}

function connection(conn) {
  return new Connection(conn.name, parseJson(conn.config, 'a connection config'));
}

function errorPayload(error) {
  return error === undefined ? undefined : asPluginError(error).payload;
}

/**
 * The `connector-api` export from `handlers`: `describe` and `read` are required; `check`
 * defaults to succeeding, `write` to refusing (read-only), `verify` to rejecting every
 * delivery, `subscribe`/`unsubscribe` to a config error.
 *
 * `host` is `{ http, log, state, webhookKeys }`, the modules imported from
 * 'weft:plugin/http@0.2.0' and so on (state and webhookKeys may be left out if unused).
 */
export function connector(hostImports, handlers) {
  host = hostImports;
  const h = {
    check: () => {},
    write: (_conn, req) => { throw PluginError.config(`stream \`${req.stream}\` is read-only in this connector`); },
    verify: () => Verification.rejected('this connector does not accept webhooks'),
    subscribe: () => { throw PluginError.config('this connector cannot subscribe to webhooks'); },
    unsubscribe: () => { throw PluginError.config('this connector cannot subscribe to webhooks'); },
    ...handlers,
  };
  return {
    describe: () => connectorInfo(h.describe()),

    check: (conn) => guarded(async () => { await h.check(connection(conn)); }),

    read: (conn, req) => guarded(async () => {
      const request = {
        stream: req.stream,
        mode: req.mode,
        cursor: req.cursor,
        /** The state the previous page returned (`Page.more(records, state)`), decoded. */
        get state() { return cursor.decode(req.cursor); },
        pageSize: req.pageSize,
        options: parseJson(req.options || '{}', 'read options'),
      };
      const page = await h.read(connection(conn), request);
      if (!page || !Array.isArray(page.records)) {
        throw PluginError.internal('read must return a page: Page.more(records, state) or Page.last(records, state)');
      }
      return {
        records: JSON.stringify(page.records),
        nextCursor: page.nextCursor ?? (page.state === undefined || page.state === null ? undefined : cursor.encode(page.state)),
        done: Boolean(page.done),
        total: page.total == null ? undefined : BigInt(page.total),
      };
    }),

    write: (conn, req) => guarded(async () => {
      const records = parseJson(req.records, 'a write batch');
      const outcomes = await h.write(connection(conn), { stream: req.stream, mode: req.mode, key: req.key, records });
      if (!Array.isArray(outcomes) || outcomes.length !== records.length) {
        throw PluginError.internal(`write must return one outcome per record: ${records.length} records, ${outcomes?.length} outcomes`);
      }
      return outcomes.map((o) => ({
        status: o.status,
        id: o.id === undefined || o.id === null ? undefined : String(o.id),
        error: errorPayload(o.error),
      }));
    }),

    verify: (conn, req) => guarded(async () => {
      const inbound = {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req.headers,
        body: req.body,
        header(name) {
          const lower = name.toLowerCase();
          return req.headers.find(([k]) => k.toLowerCase() === lower)?.[1];
        },
        text() { return decoder.decode(req.body); },
      };
      const v = await h.verify(connection(conn), inbound);
      switch (v.tag) {
        case 'accepted':
          return {
            tag: 'accepted',
            val: v.val.map((e) => ({
              id: String(e.id),
              stream: e.stream,
              action: e.action,
              record: toJson(e.record, 'an event record'),
              occurredAt: e.occurredAt,
            })),
          };
        case 'handshake': {
          const r = v.val;
          const body = typeof r.body === 'string' ? encoder.encode(r.body) : (r.body ?? new Uint8Array());
          return { tag: 'handshake', val: { status: r.status ?? 200, headers: r.headers ?? [], body } };
        }
        case 'rejected':
          return v;
        default:
          throw PluginError.internal('verify must return Verification.accepted/handshake/rejected');
      }
    }),

    subscribe: (conn, callbackUrl, events) => guarded(async () => {
      const s = await h.subscribe(connection(conn), callbackUrl, events);
      return { id: String(s.id), expiresAt: s.expiresAt };
    }),

    unsubscribe: (conn, subscriptionId) => guarded(async () => {
      await h.unsubscribe(connection(conn), subscriptionId);
    }),
  };
}

/** A record the transform refused, by its index in the input batch. */
export function reject(index, reason, field) {
  return { index, reason: String(reason), field };
}

/**
 * The `transform-api` export from `handlers`: `describe`, `outputSchema(config, input,
 * lookup)` (parsed schemas in, a schema out) and `process({ config, records, lookup })`
 * returning `{ records, rejects }` (rejects from `reject(index, reason, field)`).
 *
 * `host` is `{ log }`, the module imported from 'weft:plugin/log@0.2.0'.
 */
export function transform(hostImports, handlers) {
  host = hostImports;
  return {
    describe: () => {
      const info = handlers.describe();
      return {
        name: info.name,
        version: info.version,
        description: info.description ?? '',
        configSchema: toJson(info.configSchema ?? { type: 'object' }, 'configSchema'),
        takesLookup: Boolean(info.takesLookup),
      };
    },

    outputSchema: (config, input, lookup) => guarded(async () => {
      const schema = await handlers.outputSchema(
        parseJson(config || '{}', 'a step config'),
        parseJson(input, 'an input schema'),
        lookup === undefined ? undefined : parseJson(lookup, 'a lookup schema'),
      );
      return toJson(schema, 'the output schema');
    }),

    process: (batch) => guarded(async () => {
      const result = await handlers.process({
        config: parseJson(batch.config || '{}', 'a step config'),
        records: parseJson(batch.records, 'a batch'),
        lookup: batch.lookup === undefined ? undefined : parseJson(batch.lookup, 'a lookup batch'),
      });
      if (!result || !Array.isArray(result.records)) {
        throw PluginError.internal('process must return { records: [...], rejects: [...] }');
      }
      return {
        records: JSON.stringify(result.records),
        rejects: (result.rejects ?? []).map((r) => ({ index: r.index, reason: String(r.reason), field: r.field ?? undefined })),
      };
    }),
  };
}
