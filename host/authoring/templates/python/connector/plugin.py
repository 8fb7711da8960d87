"""{{name}}: a weft connector written in Python.

As generated it reads Zendesk users (the `users` stream), which `weft sandbox` emulates, so
`weft plugin test` passes before you change anything. To connect another API, change what the
comments marked CHANGE point at: the stream list in `describe`, the URLs and the pagination in
`read_full`/`read_changes`, and the auth method.

`weft_plugin.py` (written next to this file by `weft plugin new`) turns the class below into
the contract's `connector-api`; `wit/` holds the contract itself.
"""

import json
import time
from datetime import datetime

from weft_plugin import (
    Connector, Page, PluginError, Verification, WriteOutcome, b64encode, constant_time_equal,
    join_url, log,
)

# CHANGE: the largest page the API serves.
MAX_PAGE = 100
# Zendesk's incremental export serves up to 1,000 records a page.
MAX_EXPORT_PAGE = 1000
# Signed webhook deliveries older or newer than this are refused (a replay).
MAX_SIGNATURE_AGE_S = 5 * 60

# CHANGE: the fields of one record, as JSON Schema. Flows' field references are checked
# against it before anything runs.
USER_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"], "format": "email"},
        "phone": {"type": ["string", "null"]},
        "role": {"type": ["string", "null"]},
        "external_id": {"type": ["string", "null"]},
        "organization_id": {"type": ["integer", "null"]},
        "active": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


def api(conn, path):
    """`{base_url}/api/v2/{path}`: every URL the connector calls."""
    return join_url(conn.config_str("base_url"), f"api/v2/{path}")


class Plugin(Connector):
    def describe(self):
        return {
            "name": "{{name}}",
            "version": "0.1.0",
            "description": "Zendesk users: cursor-paginated full reads, incremental export, upserts.",
            # The connection's `config` in a flow: `config = { base_url = "https://acme.zendesk.com" }`.
            "config_schema": {
                "type": "object",
                "required": ["base_url"],
                "properties": {
                    "base_url": {"type": "string", "description": "The API root, e.g. https://acme.zendesk.com"},
                },
            },
            "streams": [{
                "name": "users",
                "description": "Users; incremental through the cursor-based user export.",
                "schema": USER_SCHEMA,
                "primary_key": ["id"],
                # Declaring a cursor field allows `sync = "incremental"` in a flow's read step.
                "cursor_field": "updated_at",
                "write_modes": ["upsert"],
            }],
            # CHANGE: how the credential is sent. The host adds it to every request; the plugin
            # never sees it. Basic: `auth = { kind = "basic", username = "...", password = "..." }`.
            # An API key in a header: {"kind": "api-key", "placement": {"header": {"name": "X-Api-Key", "value": "{token}"}}}.
            "auth": [{"kind": "basic", "placement": "basic"}],
            # The hosts a connection may reach: here whatever URL its `base_url` names.
            "hosts": ["{base_url}"],
            # The vendor's documented limit per credential (Zendesk Enterprise: 700 a minute).
            "rate_limit": {"requests": 700, "per_ms": 60_000},
        }

    def check(self, conn):
        conn.get(api(conn, "users/me.json")).send_json()

    def read(self, conn, req):
        if req.stream != "users":
            raise PluginError.config(f"{{name}} has no stream `{req.stream}`")
        # `req.state` is what the previous page returned with Page.more/Page.last, or None.
        state = req.state or {}
        if not isinstance(state, dict):
            raise PluginError.config(f"the stored cursor {req.cursor} is not one {{name}} gave out; reset the flow's cursor")
        if req.mode == "incremental":
            return read_changes(conn, state, req.page_size)
        return read_full(conn, state, req.page_size)

    def write(self, conn, req):
        if req.stream != "users" or req.mode != "upsert":
            raise PluginError.config("{{name}} writes the `users` stream by upsert only")
        # CHANGE: one request per record keeps the example plain; a bulk endpoint is faster.
        outcomes = []
        for user in req.records:
            answer = conn.post(api(conn, "users/create_or_update.json")).json({"user": user}).send()
            if answer.status == 422:
                outcomes.append(WriteOutcome.failed(PluginError.invalid_record(answer.text())))
                continue
            body = answer.error_for_status().json()
            made = WriteOutcome.created if answer.status == 201 else WriteOutcome.updated
            outcomes.append(made(body["user"]["id"]))
        return outcomes

    def verify(self, conn, req):
        # Zendesk signs each delivery: base64(HMAC-SHA256(timestamp + body)) under the
        # webhook's signing secret. The host computes the MAC with the connection's
        # `webhook_secret`, so the secret never enters the plugin; an unsigned or wrongly
        # signed delivery is refused.
        signature = req.header("x-zendesk-webhook-signature")
        timestamp = req.header("x-zendesk-webhook-signature-timestamp")
        if not signature or not timestamp:
            return Verification.rejected("the delivery is not signed")
        expected = b64encode(conn.mac("hmac-sha256", timestamp.encode() + req.body))
        if not constant_time_equal(expected, signature.strip()):
            return Verification.rejected("the signature does not match the timestamp and body")
        try:
            signed = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return Verification.rejected("the signature timestamp is not an RFC 3339 time")
        if abs(time.time() - signed) > MAX_SIGNATURE_AGE_S:
            return Verification.rejected("the delivery was signed more than five minutes from now")
        event = json.loads(req.body)
        return Verification.accepted([{
            "id": event["id"],
            "stream": "users",
            "action": event.get("type", ""),
            "record": event.get("detail", {}),
            "occurred_at": event.get("time"),
        }])

    def subscribe(self, conn, callback_url, events):
        raise PluginError.config(
            "{{name}} does not register webhooks; create the webhook in Zendesk and set the "
            "connection's webhook_secret to its signing secret")

    def unsubscribe(self, conn, subscription_id):
        raise PluginError.config("{{name}} does not register webhooks; delete the webhook in Zendesk")


def read_full(conn, state, page_size):
    """Full reads walk the list endpoint with cursor pagination:
    `GET /api/v2/users.json?page[size]=N&page[after]=C` answers
    `{"users": [...], "meta": {"has_more": true, "after_cursor": "..."}}`."""
    answer = (conn.get(api(conn, "users.json"))
              .query("page[size]", min(page_size or MAX_PAGE, MAX_PAGE))
              .query("page[after]", state.get("after"))
              .send())
    refused_cursor(answer, state.get("after"))
    body = answer.error_for_status().json()
    meta = body.get("meta") or {}
    if meta.get("has_more") and meta.get("after_cursor"):
        return Page.more(body["users"], {"after": meta["after_cursor"]})
    return Page.last(body["users"])


def read_changes(conn, state, page_size):
    """Incremental reads use the cursor-based export: the first run starts at `start_time=0`,
    every page carries `after_cursor`, and the last page (`end_of_stream`) leaves its cursor
    as the flow's state, so the next run asks only for users changed since.
    (Zendesk holds back the last minute of changes and refuses a too recent start_time.)"""
    request = conn.get(api(conn, "incremental/users/cursor.json")).query(
        "per_page", min(page_size or MAX_EXPORT_PAGE, MAX_EXPORT_PAGE))
    if state.get("cursor"):
        request.query("cursor", state["cursor"])
    else:
        request.query("start_time", 0)
    answer = request.send()
    refused_cursor(answer, state.get("cursor"))
    body = answer.error_for_status().json()
    following = {"cursor": body.get("after_cursor") or state.get("cursor")}
    log.debug("export page", records=len(body["users"]), end=body.get("end_of_stream"))
    if body.get("end_of_stream"):
        return Page.last(body["users"], following)
    return Page.more(body["users"], following)


def refused_cursor(answer, cursor):
    """A cursor the API refuses (400) is the flow's to reset, not a failure to retry."""
    if answer.status == 400 and cursor:
        raise PluginError.config(f"Zendesk refused the stored cursor ({answer.text()}); reset the flow's cursor")


# The class componentize-py instantiates for the exported `connector-api` interface.
ConnectorApi = Plugin.export()
