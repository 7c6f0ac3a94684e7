"""A headless browser drives the ops console through an outage's aftermath: fifty charges a
provider outage killed are found, explained and replayed after a dry run, and then charged by
a live worker; the queues page shows that worker consuming, the schedules page the last run.

Needs Debian's `chromium` and `chromium-driver` (tests/e2e/browser.py). Screenshots:
var/test-artifacts/ops-console/.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import AuditEvent, Job
from store.roles import Role
from store.schedules import ScheduleSpec, create_schedule
from store.types import utcnow
from tasks.publish import producer_app
from tasks.schedules import dispatch, fire_due
from tests.api.ops_world import outage_killed_charges
from tests.e2e.stack import api_process, stack_env, worker_process
from tests.support.procs import ROOT, wait_until

pytestmark = pytest.mark.e2e

RATES_TYPE = "data.sandbox.fetch_rates"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "ops-console"


def test_on_call_finds_explains_and_replays_fifty_killed_charges(
    fresh_settings: Settings, key: IssuedKey, browser: object, logs_dir: Path, sandbox: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    # Given fifty charges of a tenant that a provider outage sent dead, and an operator's key
    killed = outage_killed_charges(fresh_settings, key.tenant_id, 50)
    with get_database(fresh_settings).session() as session:
        operator = create_api_key(session, f"ops-{uuid.uuid4().hex[:6]}", "pager", Role.OPERATOR)
    # ...a schedule of the tenant that fired once (an hour ago), and a worker on every queue
    # (its heartbeat every second)
    db = get_database(fresh_settings)
    spec = ScheduleSpec("ecb-rates", RATES_TYPE, {"base": "EUR"}, interval_s=3600)
    schedule = create_schedule(db, key.tenant_id, spec, utcnow() - timedelta(minutes=90))
    assert schedule.next_fire_at is not None
    fired = fire_due(
        db, fresh_settings, schedule, schedule.next_fire_at + timedelta(seconds=1), None
    )
    dispatch(db, producer_app(fresh_settings), fired)
    env = stack_env(
        fresh_settings.database_url,
        fresh_settings.broker_key_prefix,
        sandbox,
        worker_heartbeat_s="1",
    )
    with api_process(env, logs_dir) as url, worker_process(env, logs_dir, "console") as worker:
        host = url.removeprefix("http://")
        # When on-call opens the console (the browser's basic-auth prompt: the key as password)
        browser.get(f"http://oncall:{operator.secret}@{host}/ops")
        assert "Queues" in browser.find_element(By.TAG_NAME, "h1").text
        # Then each queue lists the worker as its live consumer
        queues = browser.find_element(By.ID, "queues").text
        shot("01-overview")
        assert "payments" in queues and "heartbeats unavailable" not in queues
        assert "no consumer" not in queues, queues
        # ...follows the dead-letter link
        browser.find_element(By.PARTIAL_LINK_TEXT, "dead or needing review").click()
        group = browser.find_element(By.CSS_SELECTOR, "#groups tr:nth-child(2)")
        shot("02-dead-letters")
        # Then the fifty are one group: dead, sandbox, charge, transient
        cells = [td.text for td in group.find_elements(By.TAG_NAME, "td")][:5]
        assert cells == ["dead", "sandbox", "payments.sandbox.charge", "transient", "50"]
        # When they open the group and one of its jobs
        group.find_element(By.LINK_TEXT, "50").click()
        assert browser.find_element(By.ID, "count").text.startswith("50 job(s)")
        shot("03-jobs")
        browser.find_element(By.CSS_SELECTOR, "#jobs tr:nth-child(2) a").click()
        timeline = browser.find_element(By.ID, "attempts").text
        shot("04-job-timeline")
        # Then the timeline says why: three 503s, transient, with the card number redacted
        assert timeline.count("503") >= 3 and "transient" in timeline
        assert "4242424242424242" not in browser.page_source
        # When they go back and ask for a replay: a dry run comes first
        browser.get(f"{url}/ops/stuck")
        browser.find_element(By.XPATH, "//button[contains(., 'dry run')]").click()
        # The form posts and a new page loads: wait for it (a loaded machine takes a while)
        dry = WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "dry-run")).text
        shot("05-replay-dry-run")
        assert "50 job(s) would be queued again" in dry
        assert _states(fresh_settings, killed) == {"dead"}
        # When they confirm
        browser.find_element(By.ID, "confirm").click()
        done = browser.find_element(By.ID, "done").text
        shot("06-replayed")
        # Then the fifty are queued again, and the worker charges them this time
        assert "Replayed 50 of 50" in done
        wait_until(
            lambda: _states(fresh_settings, killed) == {"succeeded"},
            "the fifty replayed charges to succeed",
            120,
            [worker],
        )
        # ...and the audit log names the replay
        browser.find_element(By.LINK_TEXT, "Audit log").click()
        shot("07-audit-log")
        assert "ops.replay" in browser.find_element(By.ID, "audit").text
        # ...the overview shows the payments queue drained and recently consumed
        browser.find_element(By.LINK_TEXT, "Queues & providers").click()
        row = browser.find_element(By.XPATH, "//table[@id='queues']//tr[td[1]='payments']").text
        shot("08-queues-consumed")
        assert row.split()[:2] == ["payments", "0"] and "s ago" in row, row
        # ...and the schedules page shows the schedule's last run and next run
        browser.find_element(By.LINK_TEXT, "Schedules").click()
        schedules = browser.find_element(By.ID, "schedules").text
        shot("09-schedules")
        assert "ecb-rates" in schedules and "every 3600s" in schedules and "succeeded" in schedules
        assert f"{schedule.next_fire_at + timedelta(hours=1):%Y-%m-%d %H:%M:%S}" in schedules
    with get_database(fresh_settings).session() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions == ["ops.replay"]


def _states(settings: Settings, ids: list[uuid.UUID]) -> set[str]:
    with get_database(settings).session() as session:
        return set(session.scalars(select(Job.state).where(Job.id.in_(ids))))
