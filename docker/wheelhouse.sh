#!/usr/bin/env bash
# The pinned dependencies of pyproject.toml, with everything they pull in, as wheels in
# docker/wheelhouse/: built on a host that reaches the Python package index, so that
# `docker build` can install them where containers reach no index (docker/Dockerfile installs
# from this folder with --no-index when it holds wheels, from the index otherwise).
#
#   docker/wheelhouse.sh       # -> docker/wheelhouse/*.whl + requirements.txt
#
# The wheels are for the Python that runs this script (PYTHON, default python3.11): the image's
# Python must be the same minor version (Debian bookworm's python3 and python:3.11-slim are 3.11).
# Nothing is done when the folder already holds the wheels of these very pins (the key is the
# sha256 of the requirements and the Python version). IMAGE_BUILD_CACHE: a folder where a copy
# is kept under that key, reused by later runs (a CI cache; the same pins give the same wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
OUT=docker/wheelhouse
CACHE=${IMAGE_BUILD_CACHE:-}
say() { printf '[wheelhouse] %s\n' "$*" >&2; }

command -v "$PY" >/dev/null || { say "$PY not found (set PYTHON)"; exit 1; }
# setuptools too: the image installs dqm itself with --no-build-isolation (no index needed)
reqs=$("$PY" - <<'PYTHON'
import tomllib
with open("pyproject.toml", "rb") as f:
    meta = tomllib.load(f)
deps = meta["project"]["dependencies"] + meta["build-system"]["requires"]
print("\n".join(deps))
PYTHON
)
pyver=$("$PY" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')
# (v2: the wheels of every Python 3.11.x, see below)
key=$(printf 'v2\n%s\n%s\n' "$reqs" "$pyver" | sha256sum | cut -c1-16)

mkdir -p "$OUT"
if [ "$(cat "$OUT/.key" 2>/dev/null)" = "$key" ] && ls "$OUT"/*.whl >/dev/null 2>&1; then
  say "$OUT already holds the wheels of these pins (key $key)"
  exit 0
fi
rm -f "$OUT"/*.whl "$OUT/.key" "$OUT/requirements.txt"

if [ -n "$CACHE" ] && [ -f "$CACHE/wheelhouse-$key/.key" ]; then
  say "copying the wheels of key $key from $CACHE"
  cp "$CACHE/wheelhouse-$key"/*.whl "$CACHE/wheelhouse-$key/requirements.txt" "$OUT/"
else
  say "pip wheel of the pinned dependencies for $pyver (minutes on a first run)"
  printf '%s\n' "$reqs" > "$OUT/requirements.txt"
  t0=$SECONDS
  log=$(mktemp "${TMPDIR:-/tmp}/dqm-wheelhouse-XXXXXX.log")
  if ! "$PY" -m pip wheel --quiet --wheel-dir "$OUT" -r "$OUT/requirements.txt" >"$log" 2>&1; then
    tail -40 "$log" >&2; rm -f "$log"; say "pip wheel failed"; exit 1
  fi
  # pip resolves for the Python running it, 3.11.7 say; Debian bookworm's is 3.11.2, and some
  # packages need more below a patch release (redis: async-timeout for python < 3.11.3). Add
  # what any 3.11.x needs, until nothing is missing.
  for _ in 1 2 3 4 5; do
    missing=$("$PY" - "$OUT" <<'PYTHON'
import re, sys, zipfile
from pathlib import Path
from pip._vendor.packaging.markers import default_environment
from pip._vendor.packaging.requirements import Requirement

def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()

wheels = list(Path(sys.argv[1]).glob("*.whl"))
have = {canon(w.name.split("-")[0]) for w in wheels}
need = set()
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().split("\n\n")[0].splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or canon(req.name) in have or "extra" in str(req.marker):
            continue
        for micro in range(0, 20):
            env = dict(default_environment(), python_version="3.11",
                       python_full_version=f"3.11.{micro}", extra="")
            if req.marker.evaluate(env):
                req.marker = None
                need.add(str(req))
                break
print("\n".join(sorted(need)))
PYTHON
)
    [ -z "$missing" ] && break
    say "adding what other Python 3.11 releases need: $(echo $missing)"
    printf '%s\n' "$missing" > "$OUT/requirements-3.11.x.txt"
    if ! "$PY" -m pip wheel --quiet --wheel-dir "$OUT" -r "$OUT/requirements-3.11.x.txt" \
        >"$log" 2>&1; then
      tail -40 "$log" >&2; rm -f "$log"; say "pip wheel failed"; exit 1
    fi
    rm -f "$OUT/requirements-3.11.x.txt"
  done
  rm -f "$log"
  say "$(ls "$OUT"/*.whl | wc -l) wheels, $(du -sh "$OUT" | cut -f1), in $((SECONDS - t0)) s"
  if [ -n "$CACHE" ]; then
    rm -rf "$CACHE/wheelhouse-$key.tmp" && mkdir -p "$CACHE/wheelhouse-$key.tmp"
    cp "$OUT"/*.whl "$OUT/requirements.txt" "$CACHE/wheelhouse-$key.tmp/"
    echo "$key" > "$CACHE/wheelhouse-$key.tmp/.key"
    rm -rf "$CACHE/wheelhouse-$key" && mv "$CACHE/wheelhouse-$key.tmp" "$CACHE/wheelhouse-$key"
  fi
fi
echo "$key" > "$OUT/.key"
