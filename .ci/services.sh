#!/usr/bin/env bash
# Start the local services named as arguments (redis, postgres) unless they already answer.
# The start commands are this machine kind's own (see the env notes for python-svc).
set -euo pipefail

wait_for() {  # wait_for WHAT COMMAND...: poll up to 30 s, then fail saying what was awaited
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "services: $what did not start within 30 s" >&2
  return 1
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }

for service in "$@"; do
  case "$service" in
    redis)
      if ! redis_up; then
        echo "services: starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
          --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for "Redis on 127.0.0.1:6379" redis_up
      fi
      ;;
    postgres)
      if ! postgres_up; then
        echo "services: starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
        wait_for "PostgreSQL on 127.0.0.1:5432" postgres_up
      fi
      ;;
    *) echo "services: unknown service $service" >&2; exit 2 ;;
  esac
done
