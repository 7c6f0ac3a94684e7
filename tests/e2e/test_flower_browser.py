"""A headless browser opens Flower as on-call would: behind basic auth with an awkward password,
its dashboard lists the worker, its task list shows a failed job as FAILURE (and the task page
says why), and its Broker page gives every Conveyor queue's length.

Needs Debian's `chromium` and `chromium-driver` (tests/e2e/browser.py). Screenshots:
var/test-artifacts/flower/.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from tasks.publish import producer_app, publish
from tests.e2e.stack import stack_env, worker_process
from tests.support.broker import purge
from tests.support.procs import ROOT, Proc, free_port, http_ok, python_argv, wait_until
from tests.tasks.factories import CHARGE, load, make_job, script_faults

pytestmark = pytest.mark.e2e

CHARGE_TYPE = "payments.sandbox.charge"
USER, PASSWORD = "oncall", "s3cret, pass:word"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "flower"


def test_flower_dashboard_tasks_and_broker_pages_show_workers_failures_and_queue_lengths(
    fresh_settings: Settings,
    key: IssuedKey,
    sandbox: str,
    logs_dir: Path,
    browser: object,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    settings, tenant_key = fresh_settings, key
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    # Given Flower (its password has a comma, a space and a colon) and a worker
    env = {
        **stack_env(settings.database_url, settings.broker_key_prefix, sandbox),
        "CONVEYOR_FLOWER_USER": USER,
        "CONVEYOR_FLOWER_PASSWORD": PASSWORD,
        "CONVEYOR_BACKOFF_BASE_S": "30",
        "CONVEYOR_BACKOFF_CAP_S": "60",
    }
    port = free_port()
    flower = Proc(
        "flower-browser",
        python_argv("-m", "workers.cli", "flower", "--port", str(port)),
        env,
        logs_dir,
    )
    url = f"http://127.0.0.1:{port}"
    authed = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
    auth = (USER, PASSWORD)
    failed: list[uuid.UUID] = []
    try:
        wait_until(http_ok(f"{url}/healthcheck"), f"Flower on port {port}", 60, [flower])
        with worker_process(env, logs_dir, "flower-browser") as worker:
            last = 0.0

            def failure_listed() -> bool:
                # When charges meet a 400 (permanent), one a second until Flower (which
                # switches the worker's task events on) has listed one as FAILURE
                nonlocal last
                if time.monotonic() - last > 1.0:
                    script_faults(sandbox, {"status": 400})
                    job_id = make_job(settings, tenant_key.tenant_id, CHARGE_TYPE, CHARGE)
                    publish(producer_app(settings), job_id, CHARGE_TYPE, "payments")
                    failed.append(job_id)
                    last = time.monotonic()
                tasks = requests.get(f"{url}/api/tasks", auth=auth, timeout=10).json()
                return any(
                    t.get("name") == CHARGE_TYPE and t.get("state") == "FAILURE"
                    for t in tasks.values()
                )

            wait_until(failure_listed, "Flower to list a FAILURE charge", 90, [worker, flower])
            # ...on-call opens the dashboard (credentials in the URL: the basic-auth prompt)
            browser.get(f"{authed}/")
            dashboard = browser.find_element(By.TAG_NAME, "body").text
            dashboard_html = browser.page_source
            shot("01-dashboard")
            # ...the task list, filtered to failures
            browser.get(f"{authed}/tasks?state=FAILURE")
            wait_until(
                lambda: CHARGE_TYPE in browser.find_element(By.ID, "tasks-table").text,
                "the task list to load the failed charge",
                30,
            )
            listed = browser.find_element(By.ID, "tasks-table").text
            shot("02-tasks-failed")
            # ...and the failed task's own page
            link = browser.find_element(By.CSS_SELECTOR, "#tasks-table a[href*='/task/']")
            task_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
            browser.get(f"{authed}/task/{task_id}")
            task_page = browser.find_element(By.TAG_NAME, "body").text
            shot("03-task-failure")
            # ...then, with the worker gone, one charge waits in the payments queue
            purge(settings, "payments")
        waiting = make_job(settings, tenant_key.tenant_id, CHARGE_TYPE, CHARGE)
        publish(producer_app(settings), waiting, CHARGE_TYPE, "payments")
        browser.get(f"{authed}/broker")
        rows = {
            cells[0].text: [c.text for c in cells]
            for row in browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
            if (cells := row.find_elements(By.TAG_NAME, "td"))
        }
        shot("04-broker")
        anonymous = requests.get(f"{url}/broker", timeout=10)
    finally:
        flower.stop()
    # Then the dashboard lists the worker, by the name it was started with, and its failure
    assert "flower-browser-" in dashboard_html, dashboard[:2000]
    assert "Online workers\n1" in dashboard and "Failed\n1" in dashboard, dashboard[:2000]
    # ...the task list shows the failed charge as FAILURE, and its page says why (redacted)
    assert "FAILURE" in listed
    assert "FAILURE" in task_page and "failed: permanent" in task_page, task_page[:2000]
    assert "4242424242424242" not in browser.page_source
    # ...the Broker page lists every Conveyor queue, payments with its one waiting message
    assert {"payments", "data", "webhooks", "maintenance"} <= set(rows), rows
    assert rows["payments"][1] == "1", rows
    # ...and none of it is shown without the password; the jobs themselves ended failed
    assert anonymous.status_code == 401
    assert "failed" in {load(settings, j).state for j in failed}
