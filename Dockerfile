# syntax=docker/dockerfile:1
# Citizen e-ID service. Configuration only through EID_* variables; data in /data.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md requirements.lock ./
COPY keys ./keys
COPY identity ./identity
COPY signing ./signing
COPY verification ./verification
COPY api ./api
COPY wallet ./wallet
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir -c requirements.lock .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsofthsm2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin eid \
 && mkdir -p /data && chown eid /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EID_DATA_DIR=/data \
    EID_ENVIRONMENT=production
USER eid
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
# Same two steps as `make run`: initialise (idempotent), then serve.
CMD ["sh", "-c", "eid init && exec eid serve --host 0.0.0.0 --port 8000"]
