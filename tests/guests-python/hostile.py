"""hostile-python: a connector that tries, from Python, everything the sandbox must refuse,
and returns what it observed as records ``{probe, outcome, detail}`` (stream ``probes``).

outcome: "refused" (an exception), "empty" (nothing there), "allowed" (the sandbox let it
through: a confinement failure), or for the control probe "allowed" as expected.
See README.md for what each probe expects.
"""

import encodings.idna  # noqa: F401 - socket encodes host names with it; bundled so the probes reach WASI
import os
import socket  # imported here so componentize-py bundles it: the probes use the real module
import sys
import urllib.request
from urllib.parse import urlsplit

from componentize_py_types import Err
from weft_plugin import Connector, Page, PluginError


def describe_error(e):
    if isinstance(e, Err):
        return f"{type(e.value).__name__}: {getattr(e.value, 'value', e.value)}"
    return f"{type(e).__name__}: {e}"


def probe(name, attempt):
    """Runs ``attempt``; what it returns is ``(outcome, detail)``, what it raises is "refused"."""
    try:
        outcome, detail = attempt()
        return {"probe": name, "outcome": outcome, "detail": str(detail)[:300]}
    except BaseException as e:  # noqa: BLE001 - every refusal is an observation
        return {"probe": name, "outcome": "refused", "detail": describe_error(e)[:300]}


def raw_send(connection, url):
    """The raw import, so the host's own error comes back untouched."""
    from wit_world.imports import http
    return http.send(http.Request(connection=connection, method=http.Method.GET, url=url,
                                  headers=[], body=None, timeout_ms=5000))


def env():
    keys = sorted(os.environ)
    return ("allowed" if keys else "empty"), f"os.environ has {len(keys)} keys: {','.join(keys)}"


def args():
    return ("allowed" if sys.argv and sys.argv != [""] else "empty"), f"sys.argv = {sys.argv!r}"


def file_read():
    with open("/etc/passwd") as f:
        return "allowed", f"read {len(f.read())} characters of /etc/passwd"


def file_list():
    names = os.listdir(".")
    return ("allowed" if names else "empty"), f"os.listdir('.') = {names[:20]!r}"


def file_write():
    with open("weft-hostile-probe.txt", "w") as f:
        f.write("escaped")
    return "allowed", "wrote weft-hostile-probe.txt"


def socket_connect(base):
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=5) as s:
        return "allowed", f"connected to {s.getpeername()}"


def socket_ip(base):
    """A connect to the upstream's address itself, with no name to resolve."""
    parts = urlsplit(base)
    ip = parts.hostname if parts.hostname and parts.hostname[0].isdigit() else "127.0.0.1"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect((ip, parts.port or 80))
        return "allowed", f"connected to {ip}:{parts.port or 80}"
    finally:
        s.close()


def dns(base):
    found = socket.getaddrinfo(urlsplit(base).hostname or "localhost", 80)
    return "allowed", f"getaddrinfo answered {found[:2]!r}"


def urllib_fetch(base):
    with urllib.request.urlopen(base, timeout=5) as r:
        return "allowed", f"urlopen({base}) answered {r.status}"


def other_connection(other, base):
    r = raw_send(other, base)
    return "allowed", f"send for connection `{other}` answered {r.status}"


def off_list(conn_name, url):
    r = raw_send(conn_name, url)
    return "allowed", f"{url} answered {r.status}"


def other_connection_mac(other):
    from wit_world.imports import webhook_keys as wk
    mac = wk.mac(other, wk.MacAlgorithm.HMAC_SHA256, b"x")
    return "allowed", f"a MAC of {len(mac)} bytes for connection `{other}`"


def probes(conn):
    base = conn.config_str("base_url")
    other = conn.config.get("other_connection", "other")
    off_list_url = conn.config.get("off_list_url", "http://127.0.0.1:9/off-list")
    return [
        probe("env", env),
        probe("args", args),
        probe("file-read", file_read),
        probe("file-list", file_list),
        probe("file-write", file_write),
        probe("socket", lambda: socket_connect(base)),
        probe("socket-ip", lambda: socket_ip(base)),
        probe("dns", lambda: dns(base)),
        probe("fetch", lambda: urllib_fetch(base)),
        probe("other-connection", lambda: other_connection(other, base)),
        probe("off-list-address", lambda: off_list(conn.name, off_list_url)),
        probe("off-list-host", lambda: off_list(conn.name, "https://weft-off-list.invalid/")),
        probe("other-connection-mac", lambda: other_connection_mac(other)),
        # Control: the connection's own allowed host answers, so the refusals above are the
        # sandbox's doing, not a broken plugin.
        probe("control-own-host", lambda: off_list(conn.name, base)),
    ]


class Hostile(Connector):
    def describe(self):
        return {
            "name": "hostile-python",
            "version": "0.1.0",
            "description": "Tries to escape the sandbox from Python and reports what it observed.",
            "config_schema": {
                "type": "object",
                "required": ["base_url"],
                "properties": {
                    "base_url": {"type": "string"},
                    "other_connection": {"type": "string", "description": "Another connection of the flow to impersonate."},
                    "off_list_url": {"type": "string", "description": "A URL off the connection's hosts."},
                },
            },
            "streams": [{
                "name": "probes",
                "description": "One record per probe.",
                "schema": {"type": "object", "required": ["probe", "outcome"], "properties": {
                    "probe": {"type": "string"}, "outcome": {"enum": ["refused", "empty", "allowed"]},
                    "detail": {"type": "string"}}},
                "primary_key": ["probe"],
            }],
            "auth": [{"kind": "none", "placement": "basic"}, {"kind": "basic", "placement": "basic"}],
            "hosts": ["{base_url}"],
        }

    def check(self, conn):
        # Fails when any probe but the control got through.
        escaped = [p for p in probes(conn) if p["outcome"] == "allowed" and not p["probe"].startswith("control")]
        if escaped:
            raise PluginError.internal("escaped: " + "; ".join(f"{p['probe']} ({p['detail']})" for p in escaped))

    def read(self, conn, req):
        return Page.last(probes(conn))


ConnectorApi = Hostile.export()
