"""Runs an Airbyte source, unmodified, against the sandbox: spec, check, discover, and a read of
some streams. The source hard-codes the vendor's https hosts and reaches the emulators through
the sandbox's HTTPS proxy (HTTPS_PROXY and REQUESTS_CA_BUNDLE are set by the test). airbyte-cdk
sends some requests with requests' Session.send, which ignores REQUESTS_CA_BUNDLE, so the
sandbox CA is also added to this virtualenv's certifi bundle: the trust-store change any
intercepting proxy asks for.

Usage: airbyte_source.py <source command> <config.json> <stream,stream,...>
Prints one JSON object; the Rust test asserts on it."""

import json
import os
import subprocess
import sys
import tempfile

import certifi

command, config, wanted = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
source = os.path.join(os.path.dirname(sys.executable), command)

ca = open(os.environ["REQUESTS_CA_BUNDLE"]).read()
bundle = certifi.where()
if ca not in open(bundle).read():
    with open(bundle, "a") as f:
        f.write("\n" + ca)


def messages(*args):
    """The source's stdout messages, and its error traces."""
    done = subprocess.run([source, *args], capture_output=True, text=True, timeout=600)
    out, errors = [], []
    for line in done.stdout.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        out.append(m)
        if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR":
            errors.append(m["trace"]["error"].get("internal_message") or m["trace"]["error"].get("message"))
    return out, errors


result = {"errors": []}
spec, errors = messages("spec")
result["spec"] = any(m["type"] == "SPEC" for m in spec)
result["errors"] += errors

check, errors = messages("check", "--config", config)
status = next((m["connectionStatus"] for m in check if m["type"] == "CONNECTION_STATUS"), {})
result["check"] = status.get("status")
result["check_message"] = status.get("message")
result["errors"] += errors

discovered, errors = messages("discover", "--config", config)
catalog = next((m["catalog"] for m in discovered if m["type"] == "CATALOG"), {"streams": []})
result["discovered"] = sorted(s["name"] for s in catalog["streams"])
result["errors"] += errors

configured = {"streams": [{"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in catalog["streams"] if s["name"] in wanted]}
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(configured, f)
read, errors = messages("read", "--config", config, "--catalog", f.name)
counts = {name: 0 for name in wanted}
for m in read:
    if m["type"] == "RECORD":
        counts[m["record"]["stream"]] = counts.get(m["record"]["stream"], 0) + 1
result["records"] = counts
result["errors"] += errors

print(json.dumps(result))
