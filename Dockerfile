# syntax=docker/dockerfile:1
# Build: docker build -t marketedge-api .
# Release step (before new web replicas start): docker run --rm -e DATABASE_URL=... marketedge-api python -m api.ops.release
# Web (same command as the Procfile's web: line): docker run -e DATABASE_URL=... -e OIDC_...=... -p 8000:8000 marketedge-api

FROM python:3.11-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
# Production dependencies only, exactly as locked: no pgserver, no test tools.
RUN uv sync --frozen --no-dev --no-install-project

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY api ./api
COPY tables ./tables
COPY piccolo_migrations ./piccolo_migrations
COPY piccolo_conf.py Procfile ./
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8000 APP_ENV=production
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "api.ops.serve"]
