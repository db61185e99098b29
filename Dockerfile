# One image for every role of offgridperf, chosen by the command:
#   web | worker | loadgen | beat | target | migrate   (see deploy/entrypoint.sh)
# Build: docker build -t offgridperf .      Lint: make lint (hadolint)

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Compilers only here, for any dependency without a wheel; the final stage copies the venv.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OFFGRIDPERF_ENV_FILE= \
    OFFGRIDPERF_VAR_DIR=/var/lib/offgridperf \
    STATIC_ROOT=/app/staticfiles \
    BIND_HOST=0.0.0.0 \
    PORT=8000 \
    TARGET_PORT=8001
RUN groupadd --system --gid 10001 offgridperf \
    && useradd --system --uid 10001 --gid offgridperf --home-dir /app --shell /usr/sbin/nologin offgridperf \
    && mkdir -p /var/lib/offgridperf \
    && chown offgridperf:offgridperf /var/lib/offgridperf
COPY --from=build /opt/venv /opt/venv
# gdb (gdb-for-pwndbg, for allocation captures) links this image's libpython into the venv on
# its first run; run it once here, as root, since the venv is read-only to the runtime user.
RUN /opt/venv/bin/gdb --batch --version > /dev/null
WORKDIR /app
COPY --chown=root:root . /app
# Static files are part of the image: a throwaway key (settings need one to import) and a
# throwaway var/ (nothing of the build may land in the volume).
RUN SECRET_KEY=collectstatic-only-not-a-secret-0123456789 OFFGRIDPERF_VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput -v 0
USER 10001:10001
VOLUME ["/var/lib/offgridperf"]
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
