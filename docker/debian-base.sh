#!/usr/bin/env bash
# A Debian base image built from Debian's package archive alone, for hosts that cannot pull
# from any registry (the CERN technical network, these CI machines): debootstrap a minimal
# Debian into a folder, then `docker import` it. Needs root, debootstrap and a Docker engine.
#
#   docker/debian-base.sh            # -> image dqm-debian:bookworm (skipped if it exists)
#
# Environment: DEBIAN_SUITE (bookworm), DEBIAN_MIRROR (http://deb.debian.org/debian),
# BASE_IMAGE_TAG (the tag, dqm-debian:$DEBIAN_SUITE), IMAGE_BUILD_CACHE (a folder where the
# root file system is kept as a tarball, reused for up to BASE_MAX_AGE_DAYS (7) days so that
# a CI run does not debootstrap every time; a week-old base still gets today's packages, since
# every image built on it runs apt-get against the archive), REBUILD=1 to rebuild anyway.
set -euo pipefail

SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TAG=${BASE_IMAGE_TAG:-dqm-debian:$SUITE}
CACHE=${IMAGE_BUILD_CACHE:-}
MAX_AGE_DAYS=${BASE_MAX_AGE_DAYS:-7}
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)

say() { printf '[debian-base] %s\n' "$*" >&2; }

if [ -z "${REBUILD:-}" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  say "$TAG exists (REBUILD=1 to rebuild it)"
  exit 0
fi

import_tarball() {  # the root file system as a tarball on stdin -> the image $TAG
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR" \
    - "$TAG" >/dev/null
  say "imported $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
}

tarball=""
if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE"
  tarball="$CACHE/debian-$SUITE-$ARCH-$(printf '%s' "$MIRROR" | sha256sum | cut -c1-12).tar"
  if [ -z "${REBUILD:-}" ] && [ -s "$tarball" ] \
      && [ -n "$(find "$tarball" -mtime -"$MAX_AGE_DAYS" 2>/dev/null)" ]; then
    say "reusing the root file system cached in $tarball"
    import_tarball < "$tarball"
    exit 0
  fi
fi

[ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap is missing (apt-get install debootstrap)"; exit 1; }

root=$(mktemp -d "${TMPDIR:-/tmp}/dqm-debootstrap-XXXXXX")
trap 'rm -rf "$root"' EXIT
say "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
t0=$SECONDS
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$MIRROR" \
  > "$root.log" 2>&1 || { tail -30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# the release's updates and security fixes too, for every image built on this base
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
# as in Debian's own images: no package lists, no docs or man pages, no daemons started by dpkg
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n'\
'path-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
  > "$root/etc/dpkg/dpkg.cfg.d/docker-slim"
printf 'APT::Install-Recommends "false";\nAcquire::Languages "none";\n' \
  > "$root/etc/apt/apt.conf.d/docker-slim"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
say "debootstrap took $((SECONDS - t0)) s"

if [ -n "$tarball" ]; then
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  import_tarball < "$tarball"
else
  tar --numeric-owner -C "$root" -c . | import_tarball
fi
