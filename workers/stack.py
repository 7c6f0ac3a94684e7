"""`conveyor up`: the whole stack on this machine, migrated, supervised, optionally demoed."""

from __future__ import annotations

import secrets
import sys

from sqlalchemy.exc import OperationalError

from config.settings import Settings
from store.db import get_database
from store.keys import create_api_key
from store.migrate import upgrade
from workers.demo import run_demo as submit_demo
from workers.preflight import (
    StartupProblem,
    check_broker,
    check_own_listeners,
    check_ports,
    database_unreachable,
    explain_not_ready,
    stack_listeners,
)
from workers.readiness import NotReady, wait_for_http
from workers.supervisor import Child, ChildFailed, Supervisor

DEMO_TENANT = "demo"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


def _flower_credentials(settings: Settings) -> tuple[str, str, bool]:
    user = settings.flower_user
    password = settings.flower_password.get_secret_value()
    if user and password:
        return user, password, False
    return "admin", secrets.token_urlsafe(12), True


def run_stack(settings: Settings, run_demo: bool, exit_after_demo: bool) -> int:
    """Start everything, print where it listens, run the demo; returns the exit code.

    Raises StartupProblem, before anything is started, when a port is taken, the broker does
    not answer or the database cannot be reached.
    """
    listeners = stack_listeners(settings)
    check_ports(listeners)
    check_broker(settings)
    try:
        upgrade(settings)
    except OperationalError as exc:
        raise database_unreachable(settings.database_url, exc) from None
    with get_database(settings).session() as session:
        key = create_api_key(session, DEMO_TENANT, "conveyor up").secret
    user, password, generated = _flower_credentials(settings)
    flower_env = {"CONVEYOR_FLOWER_USER": user, "CONVEYOR_FLOWER_PASSWORD": password}
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    flower_url = f"http://{settings.flower_host}:{settings.flower_port}"
    children = [
        Child("sandbox", _cli("sandbox")),
        Child("api", _cli("api")),
        Child("worker", _cli("worker")),
        Child("beat", _cli("beat")),
        Child("flower", _cli("flower"), env=flower_env),
    ]
    supervisor = Supervisor(children)
    supervisor.start()
    try:
        wait_for_http(f"{settings.sandbox_url}/healthz", "sandbox")
        wait_for_http(f"{api_url}/readyz", "API")
        wait_for_http(f"{flower_url}/healthcheck", "Flower", auth=(user, password))
        by_name = {child.name: child.pid for child in children}
        check_own_listeners([(item, by_name[item.what.lower()]) for item in listeners])
        note = " (generated for this run)" if generated else ""
        print(
            "\nConveyor is up:\n"
            f"  API       {api_url}   (OpenAPI docs: {api_url}/docs)\n"
            f"  Flower    {flower_url}   user {user} password {password}{note}\n"
            f"  Sandbox   {settings.sandbox_url}\n"
            f"  Database  {settings.database_url}\n"
            f"  API key   {key}   (tenant '{DEMO_TENANT}')\n",
            flush=True,
        )
        ok = True
        if run_demo:
            print("Demo: submitting jobs over HTTP ...", flush=True)
            ok = submit_demo(api_url, key)
            print("Demo " + ("finished: every job ended as expected." if ok else "FAILED."))
        if exit_after_demo:
            return 0 if ok else 1
        print("Press Ctrl-C to stop.", flush=True)
        supervisor.run_until_signal()
        return 0
    except (NotReady, ChildFailed, StartupProblem) as exc:
        message = str(exc)
        if isinstance(exc, NotReady):
            exited = [(c.name, c.process.poll()) for c in children if c.process]
            crashed = [(name, code) for name, code in exited if code is not None]
            message = explain_not_ready(settings, crashed, message)
        for line in message.splitlines():
            print(f"conveyor: {line}", file=sys.stderr, flush=True)
        return 1
    finally:
        supervisor.stop()
