# syntax=docker/dockerfile:1
# The kubemigrate image: the operator (kopf) and the `kubemigrate` CLI that its preflight,
# backup and restore Jobs run, with PostgreSQL's client tools (pg_dump, pg_restore, psql).
#
#   docker build -t REGISTRY/kubemigrate:TAG .
#   docker build --build-arg PG_MAJOR=16 -t REGISTRY/kubemigrate:TAG-pg16 .
#
# PG_MAJOR picks the client tools from the PostgreSQL project's apt repository (apt.postgresql.org,
# PGDG), because pg_dump refuses servers newer than itself and Debian bookworm ships only 15.
# Use the newest major version among the servers you back up; it dumps older servers too.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kubemigrate
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# No dev extras; every dependency ships wheels, so no compiler is needed.
RUN /opt/kubemigrate/bin/pip install . \
 && /opt/kubemigrate/bin/kubemigrate --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG PG_MAJOR=17
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    . /etc/os-release; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 65532 kubemigrate; \
    useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubemigrate

COPY --from=build /opt/kubemigrate /opt/kubemigrate

# The chosen major version's tools first on PATH, so no version wrapper has to pick one.
ENV PATH=/opt/kubemigrate/bin:/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PG_MAJOR=${PG_MAJOR}
RUN pg_dump --version && kubemigrate --help >/dev/null

LABEL org.opencontainers.image.title="kubemigrate" \
      org.opencontainers.image.description="Kubernetes operator and CLI for safe PostgreSQL migrations and backups" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric, so that Kubernetes can verify runAsNonRoot. The root filesystem can be read-only:
# nothing writes outside /tmp (an emptyDir in the chart).
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
# No ENTRYPOINT: Jobs run `kubemigrate` as their command; the chart sets the operator's command
# (with --namespace or --all-namespaces). This default runs the operator cluster-wide.
CMD ["kopf", "run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8081/healthz", "-m", "kubemigrate.controller.main"]
