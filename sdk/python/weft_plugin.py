"""weft_plugin: helpers for weft plugins written in Python, built with componentize-py.

A plugin module subclasses `Connector` or `Transform`, writes its handlers over plain Python
values, and binds the class componentize-py looks for to what `export()` returns::

    from weft_plugin import Connector, Page, PluginError

    class MyApi(Connector):
        def describe(self):
            return {"name": "my-api", "version": "0.1.0", "streams": [...], ...}

        def read(self, conn, req):
            body = conn.get(url).query("page", 2).send_json()
            return Page.more(body["items"], {"page": 3})

    ConnectorApi = MyApi.export()      # `TransformApi = MyMap.export()` for a transform

What the glue does for the handlers:

- JSON crosses the contract as text; handlers see and return plain values: ``conn.config``,
  ``req.options``, ``req.records``, schemas, records and events are dicts and lists.
- Errors: raise a `PluginError` (``PluginError.config("...")``, ...). Any other exception
  becomes an ``internal`` error naming it instead of a trap, so the run says why.
- Cursors: return ``Page.more(records, state)`` / ``Page.last(records, state)`` with any
  JSON-able state; the next call sees it again as ``req.state``.

componentize-py conventions this relies on (0.25): the app module defines a class named after
the exported interface in CamelCase (``ConnectorApi``, ``TransformApi``), which it instantiates
without arguments; a ``result`` export returns the ok value and raises
``componentize_py_types.Err(value)`` for the error; variants are one dataclass per case
(``PluginError_Config(value)``); enums are ``Enum`` members (``Method.GET``); ``option<T>`` is
``Optional[T]``; ``list<u8>`` is ``bytes``. An imported function whose result is ``err``
raises ``Err`` with the error variant as ``.value``. Any other exception escaping an export
traps. Bindings exist only for the interfaces of the world being built, so the host
interfaces a transform lacks (``http``, ``state``, ``webhook-keys``) are imported where used.
"""

from __future__ import annotations

import base64 as _base64
import email.utils
import hmac
import json
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote

from componentize_py_types import Err
from wit_world.imports import types as _types

BODY_EXCERPT = 512

__all__ = [
    "Connection", "Connector", "InboundRequest", "Page", "PluginError", "ReadRequest",
    "RequestBuilder", "Response", "Transform", "Verification", "WriteOutcome", "WriteRequest",
    "b64encode", "constant_time_equal", "cursor_decode", "cursor_encode", "excerpt",
    "join_url", "log", "reject", "state",
]


# ---------------------------------------------------------------- errors

class PluginError(Exception):
    """An error the host can act on: it retries ``rate_limited``, ``unavailable``, ``timeout``
    and 5xx ``upstream``, logs ``invalid_record`` and carries on with the batch, and fails the
    step on the rest. ``kind`` is the contract's case, ``value`` its payload."""

    def __init__(self, kind: str, value: Any, message: Optional[str] = None):
        super().__init__(message if message is not None else f"{kind}: {value}")
        self.kind = kind
        self.value = value

    @classmethod
    def config(cls, message: str) -> "PluginError":
        """The connection or step config is wrong: say which field and what it should be."""
        return cls("config", str(message))

    @classmethod
    def auth(cls, message: str) -> "PluginError":
        """The upstream refused the credential; an operator has to fix the connection."""
        return cls("auth", str(message))

    @classmethod
    def rate_limited(cls, retry_after_ms: Optional[int], message: str) -> "PluginError":
        """The upstream asked to slow down; ``retry_after_ms`` when it said how long."""
        ms = None if retry_after_ms is None else max(0, int(retry_after_ms))
        return cls("rate-limited", (ms, str(message)))

    @classmethod
    def upstream(cls, status: int, body: bytes | str) -> "PluginError":
        """An upstream error status with the start of its body."""
        text = excerpt(body)
        return cls("upstream", (status, text), f"upstream answered {status}: {text}")

    @classmethod
    def invalid_record(cls, message: str) -> "PluginError":
        """Only this record is bad: the host logs it and carries on with the batch."""
        return cls("invalid-record", str(message))

    @classmethod
    def unavailable(cls, message: str) -> "PluginError":
        """The upstream could not be reached (connection refused or reset, DNS, TLS)."""
        return cls("unavailable", str(message))

    @classmethod
    def denied(cls, message: str) -> "PluginError":
        """The host refused an outbound request under the connection's egress policy."""
        return cls("denied", str(message))

    @classmethod
    def timeout(cls, message: str) -> "PluginError":
        return cls("timeout", str(message))

    @classmethod
    def internal(cls, message: str) -> "PluginError":
        """A bug or an unexpected state in the plugin."""
        return cls("internal", str(message))

    @property
    def retryable(self) -> bool:
        """Whether the host retries the call that failed with this error."""
        if self.kind in ("rate-limited", "unavailable", "timeout"):
            return True
        return self.kind == "upstream" and (self.value[0] == 408 or self.value[0] >= 500)

    def to_wit(self) -> Any:
        """The contract's ``plugin-error`` value."""
        t = _types
        if self.kind == "rate-limited":
            ms, message = self.value
            return t.PluginError_RateLimited(t.RateLimit(retry_after_ms=ms, message=message))
        if self.kind == "upstream":
            status, body = self.value
            return t.PluginError_Upstream(t.UpstreamFailure(status=status, body_excerpt=body))
        case = {
            "config": t.PluginError_Config, "auth": t.PluginError_Auth,
            "invalid-record": t.PluginError_InvalidRecord, "unavailable": t.PluginError_Unavailable,
            "denied": t.PluginError_Denied, "timeout": t.PluginError_Timeout,
            "internal": t.PluginError_Internal,
        }[self.kind]
        return case(self.value)


def _variant_text(value: Any) -> str:
    """A host error case as text: ``StateError_ValueTooLarge(65536)`` → ``value-too-large (65536)``."""
    case = type(value).__name__.split("_", 1)[-1]
    kebab = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    payload = getattr(value, "value", None)
    return kebab if payload is None else f"{kebab} ({payload})"


def _as_plugin_error(e: BaseException) -> PluginError:
    """Any exception as a PluginError: ours as they are, the rest as ``internal``."""
    if isinstance(e, PluginError):
        return e
    if isinstance(e, Err):
        # A host error value no helper mapped (a state or MAC refusal used directly).
        return PluginError.internal(f"host call failed: {_variant_text(e.value)}")
    where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return PluginError.internal(f"{type(e).__name__}: {e}{at}")


def excerpt(body: bytes | str | None) -> str:
    """The start of a body as text: enough to see the vendor's error code."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else (body or "")
    return text[:BODY_EXCERPT] + "…" if len(text) > BODY_EXCERPT else text


# ---------------------------------------------------------------- http

def _from_http_error(e: Err) -> PluginError:
    """The contract's ``http-error`` as the plugin error it means."""
    from wit_world.imports import http as h
    v = e.value
    if isinstance(v, h.HttpError_Denied):
        return PluginError.denied(v.value)
    if isinstance(v, h.HttpError_Timeout):
        return PluginError.timeout(v.value)
    if isinstance(v, h.HttpError_Transport):
        return PluginError.unavailable(v.value)
    if isinstance(v, h.HttpError_TooLarge):
        return PluginError.internal(f"the response exceeded the host's limit of {v.value} bytes")
    if isinstance(v, h.HttpError_Auth):
        return PluginError.auth(v.value)
    if isinstance(v, h.HttpError_InvalidRequest):
        return PluginError.internal(f"invalid request: {v.value}")
    return _as_plugin_error(e)


def join_url(base: str, path: str) -> str:
    """``base`` and ``path`` joined with exactly one ``/``."""
    return base.rstrip("/") + "/" + path.lstrip("/")


class RequestBuilder:
    """A request being built; see `Connection.get` and friends. Nothing is sent until `send`."""

    def __init__(self, conn: "Connection", method: str, url: str):
        self.conn = conn
        self.method = method
        self.base_url = url
        self.params: list[tuple[str, str]] = []
        self.headers: list[tuple[str, str]] = []
        self.body_bytes: Optional[bytes] = None
        self.timeout_ms: Optional[int] = None

    def query(self, name: str, value: Any) -> "RequestBuilder":
        """Adds a query parameter, percent-encoded; ``None`` adds nothing."""
        if value is not None:
            self.params.append((name, value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)))
        return self

    def header(self, name: str, value: str) -> "RequestBuilder":
        """Adds a header. Host, Authorization, Cookie and Proxy-* are refused: the host owns them."""
        self.headers.append((name, str(value)))
        return self

    def json(self, value: Any) -> "RequestBuilder":
        """A JSON body, with ``Content-Type: application/json``."""
        return self.body(json.dumps(value), "application/json")

    def body(self, body: bytes | str, content_type: Optional[str] = None) -> "RequestBuilder":
        """A raw body, with its content type when given."""
        self.body_bytes = body.encode() if isinstance(body, str) else bytes(body)
        if content_type:
            self.header("Content-Type", content_type)
        return self

    def timeout(self, ms: int) -> "RequestBuilder":
        """At most the connection's maximum; the host never waits longer than that."""
        self.timeout_ms = ms
        return self

    def url(self) -> str:
        """The URL with the query parameters appended."""
        url = self.base_url
        for name, value in self.params:
            url += ("&" if "?" in url else "?") + quote(name, safe="-._~") + "=" + quote(value, safe="-._~")
        return url

    def send(self) -> "Response":
        """Sends the request. Any status is a response; see `Response.error_for_status`."""
        from wit_world.imports import http as h
        request = h.Request(
            connection=self.conn.name,
            method=h.Method[self.method.upper()],
            url=self.url(),
            headers=self.headers,
            body=self.body_bytes,
            timeout_ms=self.timeout_ms,
        )
        try:
            answer = h.send(request)
        except Err as e:
            raise _from_http_error(e) from None
        return Response(answer.status, answer.headers, answer.body)

    def send_json(self) -> Any:
        """Sends, turns error statuses into PluginErrors and parses the JSON body."""
        return self.send().error_for_status().json()


class Response:
    """An upstream response: ``status``, ``headers`` (``(name, value)`` pairs), ``body`` (bytes)."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """A header's value, matched case-insensitively."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def retry_after_ms(self) -> Optional[int]:
        """The wait ``Retry-After`` asks for, in milliseconds (seconds or an HTTP date)."""
        value = (self.header("retry-after") or "").strip()
        if not value:
            return None
        try:
            return max(0, round(float(value) * 1000))
        except ValueError:
            pass
        try:
            return max(0, round((email.utils.parsedate_to_datetime(value).timestamp() - time.time()) * 1000))
        except (TypeError, ValueError):
            return None

    def error_for_status(self) -> "Response":
        """The response itself for 2xx and 3xx; otherwise the matching error: 401 and 403
        ``auth``, 429 ``rate_limited`` with ``Retry-After``, any other status ``upstream``."""
        if self.status < 400:
            return self
        if self.status in (401, 403):
            raise PluginError.auth(f"upstream answered {self.status}: {excerpt(self.body)}")
        if self.status == 429:
            raise PluginError.rate_limited(self.retry_after_ms(), excerpt(self.body))
        raise PluginError.upstream(self.status, self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; an ``upstream`` error quoting the body when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise PluginError("upstream", (self.status, f"unexpected response body ({e}): {excerpt(self.body)}")) from None


# ---------------------------------------------------------------- connection

class Connection:
    """The connection a call runs for: its name (the handle the host's ``http.send`` needs)
    and its non-secret ``config``, parsed."""

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config

    def config_str(self, key: str) -> str:
        """A string field of the config, or a config error naming the connection and field."""
        value = self.config.get(key) if isinstance(self.config, dict) else None
        if not isinstance(value, str) or not value:
            raise PluginError.config(f"connection `{self.name}` needs a string `{key}` in its config")
        return value

    def request(self, method: str, url: str) -> RequestBuilder:
        return RequestBuilder(self, method, url)

    def get(self, url: str) -> RequestBuilder:
        return self.request("get", url)

    def head(self, url: str) -> RequestBuilder:
        return self.request("head", url)

    def post(self, url: str) -> RequestBuilder:
        return self.request("post", url)

    def put(self, url: str) -> RequestBuilder:
        return self.request("put", url)

    def patch(self, url: str) -> RequestBuilder:
        return self.request("patch", url)

    def delete(self, url: str) -> RequestBuilder:
        return self.request("delete", url)

    def token_info(self) -> dict[str, str]:
        """Non-secret values from the connection's token response (``instance_url``, ...)."""
        from wit_world.imports import http as h
        try:
            return dict(h.token_info(self.name))
        except Err as e:
            raise _from_http_error(e) from None

    def mac(self, algorithm: str, message: bytes | str) -> bytes:
        """The MAC of ``message`` under the connection's webhook secret, computed by the host:
        ``algorithm`` is ``"hmac-sha256"`` or ``"hmac-sha1"``. A connection without a secret
        is a ``config`` error saying how to set one."""
        from wit_world.imports import webhook_keys as wk
        alg = {"hmac-sha256": wk.MacAlgorithm.HMAC_SHA256, "hmac-sha1": wk.MacAlgorithm.HMAC_SHA1}[algorithm]
        data = message.encode() if isinstance(message, str) else bytes(message)
        try:
            return wk.mac(self.name, alg, data)
        except Err as e:
            if isinstance(e.value, wk.MacError_NotOwnConnection):
                raise PluginError.denied(e.value.value) from None
            raise PluginError.config(e.value.value) from None


# ---------------------------------------------------------------- state

class _State:
    """The plugin's small key/value store (per plugin, connection and flow), holding JSON
    values: subscription ids, watermarks. Up to 64 KiB a value and 1,000 keys by default."""

    @staticmethod
    def _call(f: Callable[[Any], Any]) -> Any:
        from wit_world.imports import state as s
        try:
            return f(s)
        except Err as e:
            raise PluginError.internal(f"plugin state refused: {_variant_text(e.value)}") from None

    def get(self, key: str) -> Any:
        raw = self._call(lambda s: s.get(key))
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._call(lambda s: s.set(key, json.dumps(value).encode()))

    def delete(self, key: str) -> None:
        self._call(lambda s: s.delete(key))


state = _State()


# ---------------------------------------------------------------- log

class _Log:
    """Log lines into the host's tracing, attributed to the plugin and run. Never log
    secrets or record bodies."""

    @staticmethod
    def _emit(level: str, message: str, fields: Optional[dict]) -> None:
        from wit_world.imports import log as wl
        pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in (fields or {}).items()]
        wl.log(wl.Level[level], str(message), pairs)

    def trace(self, message: str, **fields: Any) -> None: self._emit("TRACE", message, fields)
    def debug(self, message: str, **fields: Any) -> None: self._emit("DEBUG", message, fields)
    def info(self, message: str, **fields: Any) -> None: self._emit("INFO", message, fields)
    def warn(self, message: str, **fields: Any) -> None: self._emit("WARN", message, fields)
    def error(self, message: str, **fields: Any) -> None: self._emit("ERROR", message, fields)


log = _Log()


# ---------------------------------------------------------------- cursors, pages, outcomes

def cursor_encode(value: Any) -> str:
    """Cursors are JSON text of whatever state the connector needs to resume."""
    return json.dumps(value, separators=(",", ":"))


def cursor_decode(text: Optional[str]) -> Any:
    """The state in ``text``, or a config error when this connector did not write it."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise PluginError.config(
            f"the stored cursor `{text}` is not one this connector understands ({e}); "
            "reset the flow's cursor to read from the beginning") from None


@dataclass
class Page:
    """What ``read`` returns; build it with `Page.more` or `Page.last`."""
    records: list
    state: Any = None
    done: bool = True
    total: Optional[int] = None
    next_cursor: Optional[str] = None

    @staticmethod
    def more(records: list, state: Any, total: Optional[int] = None) -> "Page":
        """More pages follow; the next read resumes from ``state``."""
        return Page(records, state, False, total)

    @staticmethod
    def last(records: list, state: Any = None, total: Optional[int] = None) -> "Page":
        """The stream's last page; ``state`` (optional) is where the next run starts."""
        return Page(records, state, True, total)


@dataclass
class WriteOutcome:
    """One per record of a write batch, in the batch's order."""
    status: str
    id: Optional[str] = None
    error: Optional[PluginError] = None

    @staticmethod
    def created(id: Any) -> "WriteOutcome": return WriteOutcome("created", str(id))
    @staticmethod
    def updated(id: Any) -> "WriteOutcome": return WriteOutcome("updated", str(id))
    @staticmethod
    def unchanged(id: Any) -> "WriteOutcome": return WriteOutcome("unchanged", str(id))
    @staticmethod
    def deleted(id: Any) -> "WriteOutcome": return WriteOutcome("deleted", str(id))
    @staticmethod
    def failed(error: PluginError) -> "WriteOutcome": return WriteOutcome("failed", None, error)


@dataclass
class Verification:
    """What ``verify`` returns: `accepted` events, a `handshake` reply, or `rejected`."""
    kind: str
    value: Any

    @staticmethod
    def accepted(events: list[dict]) -> "Verification":
        """Genuine: events ``{"id", "stream", "action", "record", "occurred_at"?}`` to process."""
        return Verification("accepted", events)

    @staticmethod
    def handshake(status: int = 200, body: bytes | str = b"", headers: Optional[list] = None) -> "Verification":
        """A vendor handshake: answer with this, process nothing."""
        return Verification("handshake", (status, headers or [], body.encode() if isinstance(body, str) else body))

    @staticmethod
    def rejected(reason: str) -> "Verification":
        """Not genuine, with the reason."""
        return Verification("rejected", str(reason))


@dataclass
class ReadRequest:
    stream: str
    mode: str                     # "full" or "incremental"
    cursor: Optional[str]
    page_size: Optional[int]
    options: dict

    @property
    def state(self) -> Any:
        """The state the previous page returned (``Page.more(records, state)``), decoded."""
        return cursor_decode(self.cursor)


@dataclass
class WriteRequest:
    stream: str
    mode: str                     # "create", "update", "upsert" or "delete"
    key: list[str]
    records: list


@dataclass
class InboundRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def reject(index: int, reason: str, field: Optional[str] = None) -> dict:
    """A record the transform refused, by its index in the input batch."""
    return {"index": index, "reason": str(reason), "field": field}


def b64encode(data: bytes) -> str:
    """Bytes as standard base64 (what most vendors' signatures use)."""
    return _base64.b64encode(data).decode()


def constant_time_equal(a: str, b: str) -> bool:
    """Compares two strings without stopping at the first difference (for signatures)."""
    return hmac.compare_digest(a.encode(), b.encode())


# ---------------------------------------------------------------- the glue

def _guarded(f: Callable[[], Any]) -> Any:
    """Runs a handler; anything it raises leaves as the contract's error, never a trap."""
    try:
        return f()
    except Exception as e:  # noqa: BLE001 - every failure becomes an error value
        raise Err(_as_plugin_error(e).to_wit()) from None


def _parse(text: Optional[str], what: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError as e:
        raise PluginError.internal(f"the host sent {what} that is not JSON: {e}") from None


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {})


def _enum_name(value: Any) -> str:
    return value.name.lower().replace("_", "-")


class Connector:
    """Subclass and override ``describe`` and ``read``; ``check`` defaults to succeeding,
    ``write`` to refusing (read-only), ``verify`` to rejecting every delivery, ``subscribe``
    and ``unsubscribe`` to a config error. ``export()`` makes the class componentize-py wants."""

    def describe(self) -> dict:
        raise NotImplementedError

    def check(self, conn: Connection) -> None:
        return None

    def read(self, conn: Connection, req: ReadRequest) -> Page:
        raise NotImplementedError

    def write(self, conn: Connection, req: WriteRequest) -> list[WriteOutcome]:
        raise PluginError.config(f"stream `{req.stream}` is read-only in this connector")

    def verify(self, conn: Connection, req: InboundRequest) -> Verification:
        return Verification.rejected("this connector does not accept webhooks")

    def subscribe(self, conn: Connection, callback_url: str, events: list[str]) -> dict:
        raise PluginError.config("this connector cannot subscribe to webhooks")

    def unsubscribe(self, conn: Connection, subscription_id: str) -> None:
        raise PluginError.config("this connector cannot subscribe to webhooks")

    @classmethod
    def export(cls) -> type:
        """The ``ConnectorApi`` class componentize-py instantiates, calling ``cls()``."""
        from wit_world.exports import connector_api as api
        t = _types
        plugin = cls()

        def connection(conn: Any) -> Connection:
            return Connection(conn.name, _parse(conn.config, "a connection config"))

        def placement(p: Any) -> Any:
            if p is None or p == "basic":
                return api.CredentialPlacement_Basic()
            if "header" in p:
                h = p["header"]
                return api.CredentialPlacement_Header(api.HeaderTemplate(name=h["name"], value=h.get("value", "{token}")))
            if "query" in p:
                return api.CredentialPlacement_Query(p["query"])
            raise PluginError.internal(f"unknown credential placement {p!r}")

        def mode_enum(e: type, name: str) -> Any:
            return e[name.upper().replace("-", "_")]

        def outcome(o: WriteOutcome) -> Any:
            err = None if o.error is None else _as_plugin_error(o.error).to_wit()
            return api.WriteOutcome(status=mode_enum(api.WriteStatus, o.status), id=o.id, error=err)

        class ConnectorApi:
            def describe(self) -> Any:
                info = plugin.describe()
                rate = info.get("rate_limit")
                return api.ConnectorInfo(
                    name=info["name"],
                    version=info["version"],
                    description=info.get("description", ""),
                    config_schema=_json(info.get("config_schema", {"type": "object"})),
                    streams=[t.StreamDescriptor(
                        name=s["name"],
                        description=s.get("description", ""),
                        schema=_json(s.get("schema", {"type": "object"})),
                        primary_key=list(s.get("primary_key", [])),
                        cursor_field=s.get("cursor_field"),
                        sync_modes=[mode_enum(t.SyncMode, m) for m in
                                    s.get("sync_modes", ["full", "incremental"] if s.get("cursor_field") else ["full"])],
                        write_modes=[mode_enum(t.WriteMode, m) for m in s.get("write_modes", [])],
                    ) for s in info.get("streams", [])],
                    auth=[api.AuthMethod(kind=mode_enum(api.AuthKind, a["kind"]), placement=placement(a.get("placement")),
                                         token_url=a.get("token_url")) for a in info.get("auth", [])],
                    hosts=list(info.get("hosts", [])),
                    rate_limit=None if rate is None else api.RateBudget(requests=rate["requests"], per_ms=rate["per_ms"]),
                )

            def check(self, conn: Any) -> None:
                _guarded(lambda: plugin.check(connection(conn)))

            def read(self, conn: Any, req: Any) -> Any:
                def run() -> Any:
                    page = plugin.read(connection(conn), ReadRequest(
                        stream=req.stream, mode=_enum_name(req.mode), cursor=req.cursor,
                        page_size=req.page_size, options=_parse(req.options, "read options")))
                    if not isinstance(page, Page):
                        raise PluginError.internal("read must return Page.more(records, state) or Page.last(records, state)")
                    next_cursor = page.next_cursor if page.next_cursor is not None else (
                        None if page.state is None else cursor_encode(page.state))
                    return api.Page(records=json.dumps(page.records), next_cursor=next_cursor,
                                    done=page.done, total=page.total)
                return _guarded(run)

            def write(self, conn: Any, req: Any) -> Any:
                def run() -> Any:
                    records = _parse(req.records, "a write batch")
                    outcomes = plugin.write(connection(conn), WriteRequest(
                        stream=req.stream, mode=_enum_name(req.mode), key=list(req.key), records=records))
                    if len(outcomes) != len(records):
                        raise PluginError.internal(f"write must return one outcome per record: {len(records)} records, {len(outcomes)} outcomes")
                    return [outcome(o) for o in outcomes]
                return _guarded(run)

            def verify(self, conn: Any, req: Any) -> Any:
                def run() -> Any:
                    v = plugin.verify(connection(conn), InboundRequest(
                        method=req.method, path=req.path, query=req.query, headers=list(req.headers), body=bytes(req.body)))
                    if v.kind == "accepted":
                        return api.Verification_Accepted([api.Event(
                            id=str(e["id"]), stream=e["stream"], action=e["action"],
                            record=_json(e.get("record")), occurred_at=e.get("occurred_at")) for e in v.value])
                    if v.kind == "handshake":
                        status, headers, body = v.value
                        return api.Verification_Handshake(api.Reply(status=status, headers=headers, body=body))
                    return api.Verification_Rejected(v.value)
                return _guarded(run)

            def subscribe(self, conn: Any, callback_url: str, events: list[str]) -> Any:
                def run() -> Any:
                    s = plugin.subscribe(connection(conn), callback_url, list(events))
                    return api.Subscription(id=str(s["id"]), expires_at=s.get("expires_at"))
                return _guarded(run)

            def unsubscribe(self, conn: Any, subscription_id: str) -> None:
                _guarded(lambda: plugin.unsubscribe(connection(conn), subscription_id))

        return ConnectorApi


class Transform:
    """Subclass and override ``describe``, ``output_schema(config, input, lookup)`` (parsed
    schemas in, a schema out) and ``process(config, records, lookup)`` returning
    ``(records, rejects)`` (rejects from `reject`). ``export()`` makes the class
    componentize-py wants."""

    def describe(self) -> dict:
        raise NotImplementedError

    def output_schema(self, config: Any, input: Any, lookup: Any) -> Any:
        return input

    def process(self, config: Any, records: list, lookup: Optional[list]) -> tuple[list, list]:
        raise NotImplementedError

    @classmethod
    def export(cls) -> type:
        """The ``TransformApi`` class componentize-py instantiates, calling ``cls()``."""
        from wit_world.exports import transform_api as api
        plugin = cls()

        class TransformApi:
            def describe(self) -> Any:
                info = plugin.describe()
                return api.TransformInfo(
                    name=info["name"], version=info["version"], description=info.get("description", ""),
                    config_schema=_json(info.get("config_schema", {"type": "object"})),
                    takes_lookup=bool(info.get("takes_lookup", False)))

            def output_schema(self, config: str, input: str, lookup: Optional[str]) -> str:
                return _guarded(lambda: _json(plugin.output_schema(
                    _parse(config, "a step config"), _parse(input, "an input schema"),
                    None if lookup is None else _parse(lookup, "a lookup schema"))))

            def process(self, batch: Any) -> Any:
                def run() -> Any:
                    records, rejects = plugin.process(
                        _parse(batch.config, "a step config"), _parse(batch.records, "a batch") or [],
                        None if batch.lookup is None else _parse(batch.lookup, "a lookup batch"))
                    return api.BatchResult(
                        records=json.dumps(records),
                        rejects=[api.Reject(index=r["index"], reason=str(r["reason"]), field=r.get("field")) for r in rejects])
                return _guarded(run)

        return TransformApi
