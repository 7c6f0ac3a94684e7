# Conveyor: one image for every process (api, worker, beat, flower, migrate, sandbox).
FROM python:3.11-slim

# Production: start-up refuses placeholder secrets and SQLite (README, Security); the secrets
# come from the environment the container is run with, never from the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONVEYOR_ENV=production

# procps provides pgrep, used by the beat service's healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The locked, hash-checked dependency set first (a layer that changes only with the lock),
# then the project itself without resolving anything again.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY api ./api
COPY config ./config
COPY store ./store
COPY integrations ./integrations
COPY tasks ./tasks
COPY workers ./workers
COPY bench ./bench

RUN pip install --no-cache-dir --no-deps .

# Run unprivileged; beat keeps its schedule file under /app/var, so that must be writable.
RUN useradd --create-home --uid 10001 --user-group conveyor \
    && mkdir -p /app/var \
    && chown conveyor:conveyor /app/var
USER conveyor

EXPOSE 8000 5555 8100

CMD ["conveyor", "api"]
