"""Card data and keys sent everywhere a client can put them: afterwards none is found anywhere.

A real API and worker, the sandbox PSP, success, decline and fault paths; then every table
(every column), every log line, every Redis key and value under the run's prefix, and every
error body are scanned for the card numbers, security codes and keys that were sent.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
from sqlalchemy import MetaData, select

from config.redaction import find_cvcs, find_pans
from config.settings import Settings
from integrations.payments.signing import stripe_signature
from store.db import get_database, reset_database
from store.keys import create_api_key
from store.migrate import upgrade
from tests.conftest import PG_ADMIN_DSN, PG_URL, make_settings
from tests.e2e.stack import SHARED_REDIS, api_process, beat_process, stack_env, worker_process
from tests.support.procs import wait_until

pytestmark = pytest.mark.e2e

PANS = ("4000056655665556", "4242424242424242", "5555555555554444", "378282246310005")
SHOWN_PANS = ("4000 0566 5566 5556", "4242-4242-4242-4242", "5555555555554444", "378282246310005")
CVC = "9371"
LIVE_KEY = "sk_live_51HscanABCDEFGHijk"
SECRETS = (LIVE_KEY, "whsec_scan12345", "rk_live_scan12345")
TERMINAL = {"succeeded", "failed", "dead", "cancelled", "needs_review"}
CHARGE = "payments.sandbox.charge"


def charge(payment_method: str = "pm_card_visa", **extra: Any) -> dict[str, Any]:
    payload = {"amount": 1500, "currency": "eur", "payment_method": payment_method} | extra
    return {"type": CHARGE, "payload": payload}


def hostile_requests() -> list[tuple[str, str, dict[str, Any] | None, dict[str, str]]]:
    """(method, path, json, extra headers): card data, CVCs and keys in every client field."""
    found: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = []
    for pan, secret in zip(SHOWN_PANS, (*SECRETS, SECRETS[0]), strict=True):
        found += [
            ("POST", "/v1/jobs", charge(description=f"card {pan}"), {}),
            ("POST", "/v1/jobs", charge(description=f"cvc {CVC}"), {}),
            ("POST", "/v1/jobs", charge(description=f"key {secret}"), {}),
            ("POST", "/v1/jobs", charge(payment_method=pan), {}),
            ("POST", "/v1/jobs", charge(payment_method=secret), {}),
            ("POST", "/v1/jobs", charge(cvc=CVC), {}),
            ("POST", "/v1/jobs", charge(currency=pan), {}),
            ("POST", "/v1/jobs", {"type": f"payments.{pan}", "payload": {}}, {}),
            ("POST", "/v1/jobs", {"type": secret, "payload": {}}, {}),
            ("POST", "/v1/jobs", charge(), {"Idempotency-Key": f"k {pan}"}),
            ("POST", "/v1/jobs", charge(), {"Idempotency-Key": secret}),
            ("POST", "/v1/jobs", charge(), {"Idempotency-Key": f"cvv: {CVC}"}),
            ("POST", "/v1/jobs/batch", {"jobs": [charge(), charge(description=pan)]}, {}),
            ("POST", "/v1/jobs/replay", {"filter": {"type": pan}}, {}),
            ("POST", "/v1/jobs/replay", {"filter": {"error_class": secret}}, {}),
            ("GET", f"/v1/jobs/{pan}", None, {}),
            ("POST", f"/v1/jobs/{pan}/retry", None, {}),
            ("POST", f"/v1/jobs/{pan}/cancel", None, {}),
            ("GET", f"/v1/jobs?type={pan}&error_class={secret}", None, {}),
            ("POST", "/v1/jobs", charge(), {"Authorization": f"Bearer {secret}"}),
            (
                "POST",
                "/v1/jobs",
                {"type": "payments.sandbox.refund", "payload": {"reference": pan}},
                {},
            ),
        ]
    return found


def signed_webhook(settings: Settings) -> tuple[bytes, str]:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payment_intent.payment_failed",
        "data": {
            "object": {
                "id": "pi_scan",
                "last_payment_error": {"message": f"card {SHOWN_PANS[0]} cvc {CVC} declined"},
                "payment_method_details": {"card": {"number": PANS[1], "cvc": CVC}},
                "note": LIVE_KEY,
            }
        },
    }
    body = json.dumps(event).encode()
    secret = settings.stripe_webhook_secret.get_secret_value()
    return body, stripe_signature(body, secret, int(time.time()))


def leaks(where: str, found: str) -> list[str]:
    """What in `found` is a card number, security code or key we sent."""
    flat = re.sub(r"[ -]", "", found)
    hits = [f"{where}: PAN {p[-4:]}" for p in PANS if p in flat]
    hits += [f"{where}: PAN {p}" for p in find_pans(found)]
    hits += [f"{where}: CVC {c}" for c in find_cvcs(found)]
    hits += [f"{where}: CVC field" for _ in re.finditer(rf"cv[cv]\W{{0,4}}{CVC}", found, re.I)]
    hits += [f"{where}: secret {s[:8]}" for s in SECRETS if s in found]
    return hits


def table_texts(settings: Settings) -> dict[str, str]:
    """Every row of every table, every column, as text."""
    engine = get_database(settings).engine
    metadata = MetaData()
    metadata.reflect(engine)
    texts: dict[str, str] = {}
    with engine.connect() as conn:
        for name, table in metadata.tables.items():
            rows = conn.execute(select(table)).all()
            texts[name] = "\n".join(repr(tuple(row)) for row in rows)
    return texts


def redis_texts(prefix: str) -> dict[str, str]:
    """Every key under the prefix with its value, whatever its type."""
    client = redis.Redis.from_url(SHARED_REDIS)
    texts: dict[str, str] = {}
    for raw in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        kind_raw: Any = client.type(raw)
        kind = kind_raw.decode() if isinstance(kind_raw, bytes) else str(kind_raw)
        value: Any
        if kind == "string":
            value = client.get(raw)
        elif kind == "list":
            value = client.lrange(raw, 0, -1)
        elif kind == "hash":
            value = client.hgetall(raw)
        elif kind == "set":
            value = client.smembers(raw)
        elif kind == "zset":
            value = client.zrange(raw, 0, -1, withscores=True)
        else:
            value = kind
        texts[key] = f"{key} {value!r}"
    return texts


@pytest.fixture(params=["sqlite", "postgresql"])
def own_settings(
    request: pytest.FixtureRequest, tmp_path: Path, broker_prefix: str
) -> Iterator[Settings]:
    """A migrated database of this test alone (every table is scanned), and its own prefix."""
    prefix = f"{broker_prefix}{uuid.uuid4().hex[:6]}:"
    name = f"conveyor_scan_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scan.db'}"
    else:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.format(name=name)
    settings = make_settings(url, prefix)
    upgrade(settings)
    yield settings
    reset_database()
    if request.param == "postgresql":
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_no_card_number_cvc_or_key_is_stored_logged_or_echoed_anywhere(
    own_settings: Settings, sandbox: str, tmp_path: Path
) -> None:
    # Given a real API and worker on a database and Redis prefix of this test alone
    settings = own_settings
    with get_database(settings).session() as session:
        key = create_api_key(session, f"scan-{uuid.uuid4().hex[:8]}")
    env = stack_env(settings.database_url, settings.broker_key_prefix, sandbox)
    headers = {"Authorization": f"Bearer {key.secret}"}
    logs = tmp_path / "logs"
    logs.mkdir()
    bodies: list[str] = []
    with api_process(env, logs) as api, worker_process(env, logs), beat_process(env, logs):
        # When card data, CVCs and keys are sent in every client-controlled field and header
        refused = 0
        for method, path, body, extra in hostile_requests():
            answer = requests.request(
                method, api + path, json=body, headers={**headers, **extra}, timeout=10
            )
            bodies.append(answer.text)
            assert answer.status_code < 500, (method, path, answer.text)
            # A list filter is read, never stored: it may answer 200 (with nothing found).
            listing = method == "GET" and path.startswith("/v1/jobs?")
            refused += answer.status_code >= 400 or listing
        # And a signed provider webhook carries them too
        webhook, signature = signed_webhook(settings)
        answer = requests.post(
            f"{api}/v1/providers/stripe/webhooks",
            data=webhook,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        # And clean jobs run through success, decline and fault paths
        requests.post(
            f"{sandbox}/_sandbox/faults",
            json={"script": [{"status": 503}, {"reset": "after"}]},
            timeout=5,
        ).raise_for_status()
        job_ids = []
        for body in (charge(), charge("pm_card_declined"), charge(), charge()):
            answer = requests.post(f"{api}/v1/jobs", json=body, headers=headers, timeout=10)
            assert answer.status_code == 202, answer.text
            job_ids.append(answer.json()["id"])

        def all_finished() -> bool:
            states = [
                requests.get(f"{api}/v1/jobs/{i}", headers=headers, timeout=5).json()["state"]
                for i in job_ids
            ]
            return all(state in TERMINAL for state in states)

        wait_until(all_finished, "the clean jobs to finish", timeout=60)
        for job_id in job_ids:
            answer = requests.get(f"{api}/v1/jobs/{job_id}", headers=headers, timeout=5)
            bodies.append(answer.text)
    # Then every hostile request was refused, and nothing anywhere holds what was sent
    assert refused == len(hostile_requests())
    found: list[str] = []
    for table, dump in table_texts(settings).items():
        found += leaks(f"table {table}", dump)
    for log_file in sorted(logs.glob("*.log")):
        for number, line in enumerate(log_file.read_text(errors="replace").splitlines()):
            found += leaks(f"{log_file.name}:{number + 1}", line)
    for redis_key, value in redis_texts(settings.broker_key_prefix).items():
        found += leaks(f"redis {redis_key}", value)
    for answered in bodies:
        found += leaks(f"response {answered[:80]}", answered)
    assert found == [], "\n".join(found)
    # And the negative control: the scan sees what it looks for
    assert leaks("control", f"x {SHOWN_PANS[0]} cvc {CVC} {LIVE_KEY}") != []
    tables = table_texts(settings)
    assert "pi_scan" in tables["provider_events"] and len(job_ids) == 4
