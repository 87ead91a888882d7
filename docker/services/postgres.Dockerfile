# PostgreSQL from Debian's packages, for hosts that cannot pull postgres:17
# (docker/service-images.sh builds it on a Debian trixie base, whose PostgreSQL is 17, and tags it
# with the name docker/compose.yaml uses). It keeps the official image's contract that compose
# relies on: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB create the role and the database on
# first start, the cluster lives in PGDATA=/var/lib/postgresql/data (the pgdata volume),
# pg_isready, psql, pg_dump and pg_restore are on PATH, and the server does not run as root.
ARG BASE_IMAGE=dqm-debian:trixie
FROM ${BASE_IMAGE}
ARG PG_MAJOR=17
# postgresql-common would create a cluster "main" when the server package is installed: not here,
# the entrypoint creates the one cluster in PGDATA
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}" tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
