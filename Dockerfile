# syntax=docker/dockerfile:1
# The kubemigrate image: the operator (kopf) and the `kubemigrate` CLI that its preflight,
# backup and restore Jobs run, with PostgreSQL's client tools (pg_dump, pg_restore, psql).
#
#   docker build -t REGISTRY/kubemigrate:TAG .
#   docker build --build-arg PG_MAJOR=16 -t REGISTRY/kubemigrate:TAG-pg16 .
#
# PG_MAJOR picks the client tools; use the newest major version among the servers you back up
# (pg_dump refuses servers newer than itself and dumps older ones). PG_CLIENT says where they
# come from:
#   pgdg     (default) the PostgreSQL project's apt repository, apt.postgresql.org: any version;
#   debian   Debian's own repository: only the version of the base's release (15 on bookworm);
#   base     already in PYTHON_IMAGE, which must also have python3 with venv and passwd.
# `make image` uses `base`, with a Debian bookworm base made by mmdebstrap (harness/image/), for
# machines that reach neither Docker Hub nor apt.postgresql.org:
#   buildah bud --build-arg PYTHON_IMAGE=localhost/kubemigrate-base:HASH --build-arg PG_CLIENT=base \
#     --build-arg PG_MAJOR=15 -t kubemigrate:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The requirements, read from pyproject.toml: later stages copy only these lists, so a change to
# the rest of pyproject.toml (tool settings, the version) reuses the dependencies' layer.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; m = tomllib.load(open("pyproject.toml", "rb")); \
open("/requirements.txt", "w").write("\n".join(m["project"]["dependencies"])); \
open("/build-requirements.txt", "w").write("\n".join(m["build-system"]["requires"]))'

# The dependencies: a virtualenv that changes only when they do. No dev extras; every dependency
# ships wheels, so no compiler is needed.
FROM ${PYTHON_IMAGE} AS deps
# pip's index and CA bundle, for builds behind a mirror or a TLS-inspecting proxy (`make image`
# mounts the host's bundle); build arguments reach RUN steps as variables, not the image.
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/kubemigrate
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN /opt/kubemigrate/bin/pip install -r /tmp/requirements.txt

# The package itself, as a wheel: a change to the code alone rebuilds from here, without PyPI,
# and adds one small layer to the image instead of a new copy of the virtualenv.
FROM deps AS wheel
ARG PIP_INDEX_URL
ARG PIP_CERT
COPY --from=requirements /build-requirements.txt /tmp/build-requirements.txt
RUN /opt/kubemigrate/bin/pip install -r /tmp/build-requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/kubemigrate/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG PG_MAJOR=17
ARG PG_CLIENT=pgdg
RUN set -eux; \
    case "${PG_CLIENT}" in \
      pgdg) \
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
        rm -rf /var/lib/apt/lists/*;; \
      debian) \
        apt-get update; \
        apt-get install -y --no-install-recommends ca-certificates "postgresql-client-${PG_MAJOR}"; \
        rm -rf /var/lib/apt/lists/*;; \
      base) ;; \
      *) echo "PG_CLIENT must be pgdg, debian or base, not ${PG_CLIENT}" >&2; exit 2;; \
    esac; \
    test -x "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump"; \
    groupadd --system --gid 65532 kubemigrate; \
    useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubemigrate

COPY --from=deps /opt/kubemigrate /opt/kubemigrate
# COPY, not RUN --mount=from=wheel: buildah 1.28 reuses a cached RUN whatever the mounted stage
# holds, while COPY --from is keyed by the files' content.
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/kubemigrate/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
      /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels

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
