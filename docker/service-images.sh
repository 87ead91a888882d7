#!/usr/bin/env bash
# Redis and PostgreSQL images built from Debian's packages, tagged with the names
# docker/compose.yaml uses (redis:7.4-alpine, postgres:17), for hosts that cannot pull them from
# a registry. The compose file does not change: compose finds these images locally.
#
#   docker/service-images.sh     # needs root (debootstrap) the first time, and a Docker engine
#
# Redis is Debian bookworm's (7.0: everything the DQM uses, streams and consumer groups, is there);
# PostgreSQL is Debian trixie's 17, the major version of the official image, so a pgdata volume
# can later move to the official image. The Debian bases are made by docker/debian-base.sh.
# An image that exists is kept (REBUILD=1 rebuilds it). Each image carries the label
# org.na64.dqm.built-from=debian so `docker image inspect` tells it from the official one.
set -euo pipefail
cd "$(dirname "$0")"
say() { printf '[service-images] %s\n' "$*" >&2; }

REDIS_TAG=${IMAGE_REDIS:-redis:7.4-alpine}
POSTGRES_TAG=${IMAGE_POSTGRES:-postgres:17}

build() {  # tag dockerfile base-suite
  local tag=$1 dockerfile=$2 suite=$3 t0=$SECONDS
  if [ -z "${REBUILD:-}" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag exists ($(docker image inspect -f \
      '{{index .Config.Labels "org.na64.dqm.built-from"}}' "$tag" 2>/dev/null || true)); kept"
    return 0
  fi
  DEBIAN_SUITE=$suite ./debian-base.sh
  say "building $tag from Debian $suite's packages"
  local log; log=$(mktemp "${TMPDIR:-/tmp}/dqm-service-image-XXXXXX.log")
  if ! docker build --build-arg "BASE_IMAGE=dqm-debian:$suite" \
      --label org.na64.dqm.built-from=debian --label "org.na64.dqm.debian-suite=$suite" \
      -f "services/$dockerfile" -t "$tag" services >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; say "building $tag failed"; exit 1
  fi
  rm -f "$log"
  say "$tag built in $((SECONDS - t0)) s"
}

build "$REDIS_TAG" redis.Dockerfile bookworm
build "$POSTGRES_TAG" postgres.Dockerfile trixie
