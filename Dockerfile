# Conveyor: one image for every process (api, worker, beat, flower, migrate, sandbox).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# procps provides pgrep, used by the beat service's healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

COPY pyproject.toml README.md ./
COPY api ./api
COPY config ./config
COPY store ./store
COPY integrations ./integrations
COPY tasks ./tasks
COPY workers ./workers
COPY bench ./bench

RUN pip install --no-cache-dir .

# Run unprivileged; beat keeps its schedule file under /app/var, so that must be writable.
RUN useradd --create-home --uid 10001 --user-group conveyor \
    && mkdir -p /app/var \
    && chown conveyor:conveyor /app/var
USER conveyor

EXPOSE 8000 5555 8100

CMD ["conveyor", "api"]
