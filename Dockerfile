# One image for every alphaloop service; docker-compose.yml runs it once per service, as
# `alphaloop serve all` runs one process per service on a single machine.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ALPHALOOP_HOME=/var/lib/alphaloop \
    ALPHALOOP_SERVICE_HOST=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY proto ./proto
RUN pip install --no-cache-dir ".[ml,postgres,services,discovery]" \
    && useradd --system --home-dir /var/lib/alphaloop --create-home alphaloop
COPY tests/fixtures/market /app/data

USER alphaloop
# ml 8001 (gRPC 50051), sentiment 8002, patterns 8004, strategy 8005, execution 8006, market-data 9000
EXPOSE 8001 8002 8004 8005 8006 9000 50051
ENTRYPOINT ["alphaloop"]
CMD ["serve", "--help"]
