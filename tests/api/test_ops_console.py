"""The ops console over HTTP: an operator finds the charges an outage killed, sees why, and
replays them after a dry run; tenants and strangers get nothing."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.ops import console
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import AuditEvent, Job
from store.roles import Role
from store.schedules import ScheduleSpec, create_schedule
from store.types import utcnow
from tasks.schedules import fire_due
from tests.api.conftest import auth
from tests.api.ops_world import CHARGE_TYPE, OUTAGE_MESSAGE, outage_killed_charges
from tests.support.broker import queued_job_ids

OPS_ROUTES = ["/ops", "/ops/jobs", "/ops/stuck", "/ops/audit"]
THREE_MINUTES = timedelta(seconds=180)


def hourly_rates(name: str) -> ScheduleSpec:
    """A schedule fetching rates every 60 s."""
    return ScheduleSpec(
        name=name, job_type="data.sandbox.fetch_rates", payload={"base": "EUR"}, interval_s=60
    )


@pytest.fixture
def operator_key(settings: Settings) -> IssuedKey:
    """An operator's key, of its own tenant."""
    with get_database(settings).session() as session:
        return create_api_key(session, f"ops-{uuid.uuid4().hex[:6]}", "pager", Role.OPERATOR)


@pytest.fixture
def killed(settings: Settings, tenant_key: IssuedKey) -> Iterator[list[uuid.UUID]]:
    """Fifty charges of a tenant that a sandbox outage sent dead."""
    yield outage_killed_charges(settings, tenant_key.tenant_id, 50)


def browser_auth(key: IssuedKey) -> dict[str, str]:
    """What a browser sends after the basic-auth prompt: any user, the key as password."""
    token = base64.b64encode(f"oncall:{key.secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def csrf_of(page: str) -> str:
    """The form token the page carries."""
    match = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
    assert match, page
    return match.group(1)


def test_the_operator_finds_sees_why_and_replays_the_killed_charges_after_a_dry_run(
    client: TestClient,
    settings: Settings,
    operator_key: IssuedKey,
    tenant_key: IssuedKey,
    killed: list[uuid.UUID],
) -> None:
    headers = browser_auth(operator_key)
    # Given fifty charges a provider outage killed
    # When the operator opens the dead-letter page
    stuck = client.get("/ops/stuck", headers=headers)
    # Then they are one group: dead, sandbox, the charge type, transient, 50
    assert stuck.status_code == 200
    assert re.search(
        r"dead</td><td>sandbox</td><td>payments.sandbox.charge</td>\s*<td>transient</td>\s*"
        r'<td class="num"><a [^>]*>50</a>',
        stuck.text,
    ), stuck.text
    # When they list them and open one
    listed = client.get(
        "/ops/jobs", params={"state": "dead", "provider": "sandbox"}, headers=headers
    )
    one = client.get(f"/ops/jobs/{killed[0]}", headers=headers)
    # Then all fifty are listed with the tenant, and the timeline shows why, redacted
    assert "50 job(s)" in listed.text
    assert listed.text.count(tenant_key.tenant_name) == 50
    assert one.text.count("503") >= 3 and OUTAGE_MESSAGE in one.text
    assert "4242424242424242" not in one.text
    assert one.text.count("transient") >= 3
    # When they ask to replay the group: a dry run first
    form = {
        "csrf": csrf_of(stuck.text),
        "state": "dead",
        "type": CHARGE_TYPE,
        "error_class": "transient",
    }
    dry = client.post("/ops/replay", data=form, headers=headers)
    # Then it says fifty and changes nothing
    assert dry.status_code == 200
    assert re.search(r"Dry run: <strong>50</strong>", dry.text)
    assert _states(settings, killed) == {"dead"}
    # When they confirm
    done = client.post("/ops/replay", data={**form, "confirm": "yes"}, headers=headers)
    # Then all fifty are queued again, published, and the replay is audited under the tenant
    assert re.search(r"Replayed <strong>50</strong> of 50", done.text), done.text
    assert _states(settings, killed) == {"queued"}
    assert set(queued_job_ids(settings, "payments")) >= {str(i) for i in killed}
    with get_database(settings).session() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "ops.replay")))
    assert [e.tenant_id for e in events] == [tenant_key.tenant_id]
    assert len(events[0].details["replayed"]) == 50
    assert operator_key.secret[:10] in events[0].actor
    audit_page = client.get("/ops/audit", headers=headers)
    assert "ops.replay" in audit_page.text


def _states(settings: Settings, ids: list[uuid.UUID]) -> set[str]:
    with get_database(settings).session() as session:
        return set(session.scalars(select(Job.state).where(Job.id.in_(ids))))


# Every route the console serves, read from its router, so a new page is covered by the access
# test below without anyone remembering to list it.
CONSOLE_ROUTES = sorted(
    (method, route.path)
    for route in console.router.routes
    if isinstance(route, APIRoute)
    for method in route.methods or ()
)


def test_the_access_test_covers_every_console_page_and_action() -> None:
    # Given the console's router / Then its pages and actions are all in the access test
    paths = {path for _, path in CONSOLE_ROUTES}
    assert {*OPS_ROUTES, "/ops/schedules", "/ops/jobs/{job_id}", "/ops/replay"} <= paths
    assert {m for m, _ in CONSOLE_ROUTES} == {"GET", "POST"}


@pytest.mark.parametrize(("method", "route"), CONSOLE_ROUTES)
def test_only_operators_reach_any_console_route(
    client: TestClient,
    tenant_key: IssuedKey,
    operator_key: IssuedKey,
    killed: list[uuid.UUID],
    method: str,
    route: str,
) -> None:
    # Given a tenant's key, an operator's key and no key, and a route with real ids in it
    path = route.format(job_id=killed[0], action="retry", provider="sandbox")
    form = {"state": "dead", "csrf": ""}
    if method == "POST":
        page = client.get(f"/ops/jobs/{killed[0]}", headers=browser_auth(operator_key))
        form["csrf"] = csrf_of(page.text)

    def call(headers: dict[str, str]) -> int:
        return int(client.request(method, path, data=form, headers=headers).status_code)

    # When each of them calls it
    stranger = client.request(method, path, data=form)
    tenant, tenant_bearer = call(browser_auth(tenant_key)), call(auth(tenant_key))
    operator = call(browser_auth(operator_key))
    # Then the stranger is asked for credentials, the tenant is refused, the operator served
    assert stranger.status_code == 401
    assert stranger.headers["WWW-Authenticate"].startswith("Basic")
    assert (tenant, tenant_bearer) == (403, 403)
    assert operator in (200, 303), (method, path, operator)


def test_console_actions_need_the_pages_form_token_and_the_same_site(
    client: TestClient, settings: Settings, operator_key: IssuedKey, killed: list[uuid.UUID]
) -> None:
    # Given an operator and a dead job
    headers = browser_auth(operator_key)
    page = client.get(f"/ops/jobs/{killed[0]}", headers=headers)
    token = csrf_of(page.text)
    # When a retry is posted without the token, from another site, and properly
    no_token = client.post(f"/ops/jobs/{killed[0]}/retry", data={}, headers=headers)
    cross_site = client.post(
        f"/ops/jobs/{killed[0]}/retry",
        data={"csrf": token},
        headers={**headers, "Sec-Fetch-Site": "cross-site"},
    )
    proper = client.post(f"/ops/jobs/{killed[0]}/retry", data={"csrf": token}, headers=headers)
    # Then only the proper one acts, and it is audited
    assert (no_token.status_code, cross_site.status_code) == (403, 403)
    assert proper.status_code == 200 and "queued again" in proper.text
    assert _states(settings, killed[:1]) == {"queued"}
    assert _states(settings, killed[1:]) == {"dead"}
    with get_database(settings).session() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions == ["ops.retry"]


def test_the_overview_shows_queues_breakers_and_rate_limits(
    settings: Settings, operator_key: IssuedKey
) -> None:
    # Given an operator and a rate limit on the sandbox provider
    limited = settings.model_copy(update={"rate_limits": "sandbox=50/1"})
    # When the overview is opened
    with TestClient(create_app(limited)) as client:
        page = client.get("/ops", headers=browser_auth(operator_key))
    # Then every queue and every provider's breaker is there
    assert page.status_code == 200
    for queue in ("payments", "data", "webhooks"):
        assert f">{queue}</a>" in page.text
    assert 'class="breaker-closed">closed<' in page.text
    assert "<td>50/1s</td>" in page.text


def test_the_schedules_page_shows_each_schedules_last_and_next_run(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, operator_key: IssuedKey
) -> None:
    # Given a tenant's schedule every 60 s that fired once, 2 s late, and one created three
    # minutes ago that never fired (its beat is down)
    db = get_database(settings)
    start = utcnow() - timedelta(seconds=600)
    fired = create_schedule(db, tenant_key.tenant_id, hourly_rates("rates-every-minute"), start)
    assert fired.next_fire_at is not None
    fire_due(db, settings, fired, fired.next_fire_at + timedelta(seconds=2), None)
    create_schedule(
        db, tenant_key.tenant_id, hourly_rates("rates-stalled"), utcnow() - THREE_MINUTES
    )
    # When the operator opens the schedules page
    page = client.get("/ops/schedules", headers=browser_auth(operator_key))
    # Then both are listed with trigger, last slot, how late it fired, its job and next run
    assert page.status_code == 200, page.text
    table = page.text[page.text.index('id="schedules"') :]
    row = table[table.index("rates-every-minute") :].split("</tr>")[0]
    assert "data.sandbox.fetch_rates" in row and "every 60s" in row and "active" in row
    assert f"{fired.next_fire_at:%Y-%m-%d %H:%M:%S}" in row
    assert "(+2.0 s)" in row and ">queued</a>" in row
    stalled = table[table.index("rates-stalled") :].split("</tr>")[0]
    assert "never" in stalled and 'class="num state-dead"' in stalled


def test_the_overview_renders_with_breakers_unknown_while_redis_cannot_answer(
    settings: Settings, operator_key: IssuedKey
) -> None:
    # Given an API whose guard Redis refuses connections
    app = create_app(settings.model_copy(update={"guard_redis_url": "redis://127.0.0.1:1/0"}))
    with TestClient(app) as client:
        # When the operator opens the overview
        page = client.get("/ops", headers=browser_auth(operator_key))
    # Then it renders, saying the breakers' state is unknown
    assert page.status_code == 200, page.text[:500]
    assert "unknown" in page.text


def test_closing_a_breaker_while_redis_cannot_answer_is_503_not_500(
    settings: Settings, operator_key: IssuedKey
) -> None:
    # Given an API whose guard Redis refuses connections, and the overview's form token
    app = create_app(settings.model_copy(update={"guard_redis_url": "redis://127.0.0.1:1/0"}))
    with TestClient(app) as client:
        headers = browser_auth(operator_key)
        token = csrf_of(client.get("/ops", headers=headers).text)
        # When the operator closes a breaker
        response = client.post(
            "/ops/providers/sandbox/close", data={"csrf": token}, headers=headers
        )
    # Then it is a 503 naming the setting to check, with a Retry-After
    assert response.status_code == 503, response.text[:300]
    assert response.json()["error"]["details"]["setting"] == "CONVEYOR_GUARD_REDIS_URL"
    assert "Retry-After" in response.headers


def test_basic_auth_on_the_console_is_held_to_the_keys_request_rate(
    settings: Settings, operator_key: IssuedKey
) -> None:
    # Given an API allowing a key 2 requests at once, then one per 10 s
    app = create_app(settings.model_copy(update={"api_rate_limit_per_s": 0.1, "api_rate_burst": 2}))
    with TestClient(app) as client:
        # When the operator's browser opens three console pages
        statuses = [
            client.get("/ops/audit", headers=browser_auth(operator_key)).status_code
            for _ in range(3)
        ]
    # Then the third is refused like a Bearer request over its rate
    assert statuses == [200, 200, 429]
