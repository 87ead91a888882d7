# Redis from Debian's packages, for hosts that cannot pull redis:7.4-alpine (docker/service-images.sh
# builds it and tags it with the name docker/compose.yaml uses). It keeps the official image's
# contract that compose relies on: redis-server and redis-cli on PATH, the working directory
# /data (the append-only file goes there, the redis-data volume is mounted there), not root.
ARG BASE_IMAGE=dqm-debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
