# deployguard's container image: `docker build -t deployguard:0.1.0 .`
# Multi-stage: the build stage installs into a virtualenv with the exact versions of
# constraints.txt (scripts/lock_constraints.py); the runtime stage copies only that
# virtualenv onto the same slim base and runs as an unprivileged user. The Helm chart
# runs it with a read-only root filesystem, uid/gid 10001 and all capabilities dropped.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# The opa binary (static) for policy.engine wasm, which compiles each revision with it;
# the same release as the chart's OPA sidecar.
ARG OPA_IMAGE=openpolicyagent/opa:1.22.3-static

FROM ${OPA_IMAGE} AS opa

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY webhook ./webhook
COPY policies ./policies
RUN python -m venv /opt/deployguard \
 && /opt/deployguard/bin/pip install --constraint constraints.txt . \
 && /opt/deployguard/bin/deployguard --help >/dev/null

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 deployguard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin deployguard
COPY --from=build /opt/deployguard /opt/deployguard
COPY --from=opa /opa /usr/local/bin/opa
ENV PATH=/opt/deployguard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["deployguard"]
CMD ["serve", "--config", "/etc/deployguard/config.yaml"]
