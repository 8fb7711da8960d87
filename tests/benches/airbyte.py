#!/usr/bin/env python3
"""weft against the tool its users would pick instead, reading the same stream from the same
emulator on this machine, alternately:

  weft     `weft run` of a flow reading the stream (incremental export where the vendor has one)
           into a dataset, in a tenant of its own each round (nothing kept from the last round);
  airbyte  the Airbyte source's `read` of the stream, unmodified, from PyPI in a virtualenv of
           its own, through the sandbox's HTTPS proxy (it hard-codes the vendor's host);
  ceiling  a trivial keep-alive client (Python's http.client) that pages through the endpoint
           weft reads, asking for what weft asks for (the query of weft's first request, read
           from the sandbox's request log: HubSpot's properties, Zendesk's page size), and
           parses each page, doing nothing else: what the emulator can give.

It prints records/s, CPU seconds (user + system, of the process and what it waited for) and
peak RSS of each, and the ratios. The sandbox runs with `--no-rate-limits`: the emulated
throttling must not set the pace.

Usage (from the repository root, after `cargo build --release -p weft`):

  python3 tests/benches/airbyte.py [--vendor zendesk|hubspot] [--records 100000] [--rounds 3]
                                   [--weft target/release/weft] [--skip-airbyte]

The first run installs the Airbyte source into target/bench-venvs/ (a few minutes); later runs
reuse it. The sandbox's ports (4100-4108) must be free.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "host/sandbox/tests/official_clients/requirements"
ADMIN = "http://127.0.0.1:4100"


class Vendor:
    """What each contender reads of one vendor."""

    def __init__(self, slug, stream, airbyte, size_field):
        self.slug, self.stream, self.airbyte, self.size_field = slug, stream, airbyte, size_field


VENDORS = {
    "zendesk": Vendor("zendesk", "tickets", "airbyte_zendesk", "tickets"),
    "hubspot": Vendor("hubspot", "contacts", "airbyte_hubspot", "contacts"),
}


def admin(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(ADMIN + path, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)


def timed(argv, env=None, stdout=subprocess.DEVNULL, count_lines=None):
    """Runs argv to its end: (seconds, CPU seconds, peak RSS MiB, records counted, exit code).
    With `count_lines`, stdout is read here and each line for which it is true counts."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE if count_lines else stdout, stderr=subprocess.PIPE
    )
    counted = 0
    if count_lines:
        for line in process.stdout:
            if count_lines(line):
                counted += 1
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-3000:])
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, counted, process.returncode


def weft_flow(vendor, credentials, base_url):
    host = base_url.split("//", 1)[1]
    # The sandbox lifts its rate limits, so the flow lifts the pace its connector keeps by
    # default (HubSpot's 100 requests per 10 s, say), as a flow for an account with a higher
    # limit would.
    egress = (
        f'egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]\n'
        'rate = { requests = 1000000, per = "1s" }'
    )
    if vendor.slug == "zendesk":
        connection = (
            'plugin = "zendesk"\n'
            f'config = {{ subdomain = "{credentials["extra"]["subdomain"]}", base_url = "{base_url}" }}\n'
            f'auth = {{ kind = "basic", username = "{credentials["username"]}/token", '
            f'password = "{credentials["api_token"]}" }}\n'
        )
        read = f'{{ connection = "source", stream = "{vendor.stream}", sync = "incremental" }}'
    else:
        connection = (
            'plugin = "hubspot"\n'
            f'config = {{ base_url = "{base_url}" }}\n'
            f'auth = {{ kind = "bearer", token = "{credentials["api_token"]}" }}\n'
        )
        read = f'{{ connection = "source", stream = "{vendor.stream}", sync = "full" }}'
    return (
        f'name = "bench-{vendor.slug}"\n\n[connections.source]\n{connection}{egress}\n\n'
        '[connections.store]\nplugin = "dataset"\n\n'
        f'[[steps]]\nid = "read"\nread = {read}\n\n'
        '[[steps]]\nid = "keep"\n'
        f'write = {{ connection = "store", stream = "{vendor.stream}", input = "read", mode = "upsert", key = ["id"] }}\n'
    )


def run_weft(weft, data_dir, flow, tenant):
    env = dict(os.environ, WEFT_DATA_DIR=str(data_dir), WEFT_TENANT=tenant)
    out = tempfile.TemporaryFile()
    seconds, cpu, rss, _, code = timed([weft, "run", str(flow)], env=env, stdout=out)
    out.seek(0)
    written = 0
    for line in out.read().decode().splitlines():
        fields = line.split()
        # The step table: step, status, pages, in, out, failed.
        if len(fields) == 6 and fields[0] == "keep" and fields[1] == "succeeded":
            written = int(fields[4])
    return seconds, cpu, rss, written, code


def ceiling_client(vendor, credentials, base_url, first_request):
    """The trivial client, as a Python snippet run in a process of its own. It asks for what
    weft asked for: `first_request` is the path and query of weft's first request for the
    stream (HubSpot's list takes the properties weft names, and answers more per record than
    with its default properties)."""
    if vendor.slug == "zendesk":
        auth = "Basic " + b64encode(
            f'{credentials["username"]}/token:{credentials["api_token"]}'.encode()
        ).decode()
        # Later pages as weft asks for them: the first request's query (page size, ...) with
        # the cursor instead of the start time.
        first = first_request
        endpoint, _, query = first_request.partition("?")
        kept = "&".join(p for p in query.split("&") if not p.startswith("start_time="))
        after = f"{endpoint}?{kept}&cursor=" if kept else f"{endpoint}?cursor="
        step = (
            "n += len(page['tickets'])\n"
            "    if page['end_of_stream']: break\n"
            f"    path = {after!r} + urllib.parse.quote(page['after_cursor'])\n"
        )
    else:
        auth = "Bearer " + credentials["api_token"]
        first = first_request
        step = (
            "n += len(page['results'])\n"
            "    after = page.get('paging', {}).get('next', {}).get('after')\n"
            "    if after is None: break\n"
            f"    path = {first_request!r} + '&after=' + urllib.parse.quote(after)\n"
        )
    host, port = base_url.split("//", 1)[1].split(":")
    return (
        "import http.client, json, urllib.parse\n"
        f"c = http.client.HTTPConnection({host!r}, {int(port)})\n"
        f"path, n = {first!r}, 0\n"
        "while True:\n"
        f"    c.request('GET', path, headers={{'Authorization': {auth!r}}})\n"
        "    r = c.getresponse()\n"
        "    assert r.status == 200, (r.status, r.read())\n"
        "    page = json.loads(r.read())\n"
        f"    {step}"
        "print(n)\n"
    )


def first_request(vendor):
    """The path and query of weft's first request for the stream, from the sandbox's log."""
    marker = {"zendesk": f"/incremental/{vendor.stream}/", "hubspot": f"/objects/{vendor.stream}?"}
    for entry in admin(f"/admin/log?vendor={vendor.slug}&limit=20")["requests"]:
        if entry["method"] == "GET" and marker[vendor.slug] in entry["uri"]:
            return entry["uri"]
    sys.exit(f"weft's warm-up round made no request for {vendor.stream}")


def run_ceiling(script):
    out = tempfile.TemporaryFile()
    seconds, cpu, rss, _, code = timed([sys.executable, "-c", script], stdout=out)
    out.seek(0)
    text = out.read().decode().strip()
    return seconds, cpu, rss, int(text) if text.isdigit() else 0, code


def airbyte_venv(vendor):
    venv = ROOT / "target/bench-venvs" / vendor.airbyte
    python = venv / "bin/python"
    requirements = REQUIREMENTS / f"{vendor.airbyte}.txt"
    stamp = venv / "installed-requirements.txt"
    if not stamp.exists() or stamp.read_text() != requirements.read_text():
        print(f"installing {requirements.name} into {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
        )
        stamp.write_text(requirements.read_text())
    return venv


def airbyte_setup(vendor, credentials, data_dir, scratch):
    venv = airbyte_venv(vendor)
    ca_path = data_dir / "sandbox-ca.pem"
    ca = ca_path.read_text()
    # airbyte-cdk sends some requests without reading REQUESTS_CA_BUNDLE: the sandbox CA goes
    # into the virtualenv's certifi bundle too, as any intercepting proxy requires.
    bundle = subprocess.run(
        [str(venv / "bin/python"), "-c", "import certifi; print(certifi.where())"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    if ca not in Path(bundle).read_text():
        with open(bundle, "a") as f:
            f.write("\n" + ca)
    if vendor.slug == "zendesk":
        command = "source-zendesk-support"
        config = {
            "subdomain": credentials["extra"]["subdomain"],
            "start_date": "2020-01-01T00:00:00Z",
            "credentials": {
                "credentials": "api_token",
                "email": credentials["username"],
                "api_token": credentials["api_token"],
            },
        }
    else:
        command = "source-hubspot"
        config = {
            "start_date": "2020-01-01T00:00:00Z",
            "credentials": {
                "credentials_title": "Private App Credentials",
                "access_token": credentials["api_token"],
            },
        }
    config_path = scratch / "airbyte-config.json"
    config_path.write_text(json.dumps(config))
    env = dict(
        os.environ,
        HTTPS_PROXY="http://127.0.0.1:4108",
        https_proxy="http://127.0.0.1:4108",
        REQUESTS_CA_BUNDLE=str(ca_path),
        SSL_CERT_FILE=str(ca_path),
        NO_PROXY="",
        no_proxy="",
    )
    source = str(venv / "bin" / command)
    discovered = subprocess.run(
        [source, "discover", "--config", str(config_path)],
        env=env, check=True, capture_output=True, text=True, timeout=600,
    ).stdout
    catalog = next(
        json.loads(line)["catalog"]
        for line in discovered.splitlines()
        if line.startswith("{") and json.loads(line).get("type") == "CATALOG"
    )
    configured = {
        "streams": [
            {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
            for s in catalog["streams"]
            if s["name"] == vendor.stream
        ]
    }
    catalog_path = scratch / "airbyte-catalog.json"
    catalog_path.write_text(json.dumps(configured))
    argv = [source, "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    return argv, env


def run_airbyte(argv, env):
    return timed(argv, env=env, count_lines=lambda line: line.startswith(b'{"type": "RECORD"') or b'"type":"RECORD"' in line[:40])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendor", choices=sorted(VENDORS), default="zendesk")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weft", default=str(ROOT / "target/release/weft"))
    parser.add_argument("--skip-airbyte", action="store_true")
    parser.add_argument("--airbyte-rounds", type=int, default=1,
                        help="rounds the Airbyte source runs (minutes each at 100,000 records)")
    args = parser.parse_args()
    vendor = VENDORS[args.vendor]
    weft = shutil.which(args.weft) or args.weft
    if not Path(weft).exists():
        sys.exit(f"no weft binary at {weft}: build it with `cargo build --release -p weft`, or give --weft")

    try:
        admin("/admin")
        sys.exit(f"something already answers on {ADMIN}: stop it (another sandbox?) first")
    except OSError:
        pass
    scratch = Path(tempfile.mkdtemp(prefix="weft-bench-airbyte-"))
    data_dir = scratch / "data"
    sandbox = subprocess.Popen(
        [weft, "sandbox", "--proxy", "--no-rate-limits"],
        env=dict(os.environ, WEFT_DATA_DIR=str(data_dir)),
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            # Another sandbox on the ports would answer in its place: this one must be running.
            if sandbox.poll() is not None:
                sys.exit(f"the sandbox exited ({sandbox.returncode}); are ports 4100-4108 free?")
            try:
                admin("/admin")
                break
            except OSError:
                time.sleep(0.1)
        started = time.perf_counter()
        admin("/admin/seed", {"vendor": vendor.slug, "size": {vendor.size_field: args.records}})
        print(f"sandbox: {args.records} {vendor.slug} {vendor.stream} seeded in "
              f"{time.perf_counter() - started:.1f} s")
        index = admin("/admin")
        entry = next(v for v in index["vendors"] if v["vendor"] == vendor.slug)
        credentials, base_url = entry["credentials"], entry["base_url"]
        flow = scratch / "flow.toml"
        flow.write_text(weft_flow(vendor, credentials, base_url))
        airbyte = None if args.skip_airbyte else airbyte_setup(vendor, credentials, data_dir, scratch)

        # A round before the timed ones: weft compiles the plugin into its cache once. The
        # ceiling then asks for what weft's first request asked for.
        urllib.request.urlopen(urllib.request.Request(ADMIN + "/admin/log", method="DELETE"))
        run_weft(weft, data_dir, flow, "bench-warmup")
        ceiling = ceiling_client(vendor, credentials, base_url, first_request(vendor))
        results = {"weft": [], "airbyte": [], "ceiling": []}
        for round_ in range(args.rounds):
            contenders = [("ceiling", lambda: run_ceiling(ceiling)),
                          ("weft", lambda: run_weft(weft, data_dir, flow, f"bench-{round_}"))]
            if airbyte and round_ < args.airbyte_rounds:
                contenders.append(("airbyte", lambda: run_airbyte(*airbyte)))
            for name, run in contenders:
                seconds, cpu, rss, records, code = run()
                if code != 0 or records != args.records:
                    sys.exit(f"{name} round {round_ + 1}: exit {code}, {records} of {args.records} records")
                results[name].append((records / seconds, cpu, rss))
                print(f"round {round_ + 1} {name:8} {records / seconds:>10,.0f} records/s "
                      f"{seconds:7.2f} s  cpu {cpu:6.2f} s  peak RSS {rss:6.1f} MiB", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    print(f"\n{vendor.slug} {vendor.stream}, {args.records} records, median of {args.rounds} rounds")
    print(f"{'':8} {'records/s':>10} {'cpu s':>7} {'RSS MiB':>8}")
    summary = {}
    for name, rows in results.items():
        if rows:
            summary[name] = tuple(median([r[i] for r in rows]) for i in range(3))
            rate, cpu, rss = summary[name]
            print(f"{name:8} {rate:>10,.0f} {cpu:>7.2f} {rss:>8.1f}")
    weft_rate = summary["weft"][0]
    print(f"\nweft / ceiling records/s: {weft_rate / summary['ceiling'][0]:.2f}")
    if "airbyte" in summary:
        rate, cpu, rss = summary["airbyte"]
        print(f"weft / airbyte records/s: {weft_rate / rate:.1f}x; "
              f"airbyte / weft CPU: {cpu / summary['weft'][1]:.1f}x; RSS: {rss / summary['weft'][2]:.1f}x")


if __name__ == "__main__":
    main()
