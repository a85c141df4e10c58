# The DICOM gateway (gateway/): DIMSE C-STORE over mutual TLS on 2762, STOW-RS and /health on 8080.
# Runs as a non-root user with a read-only root filesystem; the only writable path it needs is
# $TMPDIR (/tmp): TLS material passed in environment variables (written 0600) and every received
# instance, spooled there before its upload.
#
#   docker build -t cloud-pacs-gateway:v0.1.0 .
#   docker run --read-only --tmpfs /tmp -p 2762:2762 -p 8080:8080 \
#     -e PACS_GATEWAY_TLS_CERT="$(cat gw.pem)" -e PACS_GATEWAY_TLS_KEY="$(cat gw.key)" \
#     -e PACS_GATEWAY_CLIENT_CA="$(cat ca.pem)" cloud-pacs-gateway:v0.1.0 \
#     --dimse-port 2762 --http-port 8080 --tls-cert-env PACS_GATEWAY_TLS_CERT \
#     --tls-key-env PACS_GATEWAY_TLS_KEY --client-ca-env PACS_GATEWAY_CLIENT_CA --inbox-bucket BUCKET

FROM python:3.12-slim AS build
WORKDIR /build
COPY gateway/requirements.txt .
RUN pip install --no-cache-dir --no-compile --prefix=/install -r requirements.txt

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    TMPDIR=/tmp
COPY --from=build /install /usr/local
# Only what the gateway imports: its package and the validator's accepted-syntax lists.
COPY gateway/ /app/gateway/
COPY lambdas/__init__.py lambdas/dicom_checks.py /app/lambdas/
# Byte code at build time: the root filesystem is read-only at run time.
RUN python -m compileall -q /app /usr/local/lib/python3.12 \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
    && chown 10001:10001 /tmp && chmod 1777 /tmp
# ECS mounts the task's scratch volume at /tmp (infra/components/edge.py). A Fargate bind mount is
# root-owned 0755 unless the image declares the path a VOLUME: then ECS copies the image's /tmp,
# owner and mode included, so user 10001 can write there.
VOLUME ["/tmp"]
USER 10001:10001
EXPOSE 2762 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["python", "-m", "gateway"]
