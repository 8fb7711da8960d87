#!/usr/bin/env bash
# Builds tests/guests-python/hostile.py into target/guests-python/hostile_python.wasm, against
# the repo's wit/ and sdk/python/weft_plugin.py, with componentize-py from
# build-requirements.txt in target/guests-python/.venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/target/guests-python
mkdir -p "$out/src"
[ -x "$out/.venv/bin/componentize-py" ] || {
  python3 -m venv "$out/.venv"
  "$out/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/build-requirements.txt"
}
cp "$here/hostile.py" "$root/sdk/python/weft_plugin.py" "$out/src/"
start=$(date +%s)
"$out/.venv/bin/componentize-py" --quiet --wit-path "$root/wit" --world connector componentize \
  --python-path "$out/src" hostile --output "$out/hostile_python.wasm"
echo "built target/guests-python/hostile_python.wasm ($(( $(stat -c %s "$out/hostile_python.wasm") / 1000000 )) MB) in $(( $(date +%s) - start )) s"
