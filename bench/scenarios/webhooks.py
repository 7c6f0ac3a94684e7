"""webhooks: outbound deliveries to a local receiver, and event → delivery latency.

Conveyor: one worker process (threads pool, -c 16) on queue `webhooks`; the bench process
writes events through the outbox exactly as a finishing job does (`write_events`: the event
row and its delivery job in one transaction, the ids published after the commit) to one
endpoint whose receiver runs in this process and answers 200 at
once; the endpoint's in-flight cap is raised to the thread count. Figures per run:
deliveries/s of a burst of N events committed together (commit → last arrival); the burst's
p95 event → delivery (queueing included); p50/p95 of events paced at `PACED_PER_S`, one
transaction each (no backlog: the latency one event sees). The baseline is the floor of the
HTTP part alone: the same N bodies POSTed by 16 threads with keep-alive sessions, no database,
queue, address check or signature.
"""

from __future__ import annotations

import http.server
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import requests

from bench import keyspace
from bench.conveyor_stack import beat_process, worker_process
from bench.conveyor_store import prove_consuming
from bench.procs import BenchError, wait_until
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import Conveyor, conveyor
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.outbox import NewEvent, subscribers, write_events
from store.types import utcnow
from store.webhooks import create_endpoint
from tasks.webhooks import delivery_policy, publish_deliveries

NAME = "webhooks"
BASELINE = "requests-16-threads"
DEFAULT_N = 500
CONCURRENCY = 16
PACED_N = 100
PACED_PER_S = 20.0
SLOWEST_PER_S = 5.0
UNITS = {
    "deliveries_per_s": "deliveries/s",
    "burst_p95_ms": "ms",
    "paced_p50_ms": "ms",
    "paced_p95_ms": "ms",
}
# Printed, not asserted: how much of the bare HTTP rate survives the outbox, queue and signing.
TARGETS = [Target("deliveries_per_s", BASELINE, 0.25)]


@dataclass
class Arrivals:
    """When each numbered event reached the receiver (perf_counter), and how many came."""

    at: dict[str, float] = field(default_factory=dict)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget the previous run."""
        with self.lock:
            self.at.clear()
            self.count = 0


@contextmanager
def receiver() -> Iterator[tuple[str, Arrivals]]:
    """A threaded HTTP receiver on a free port answering 200; yields its URL and arrivals."""
    arrivals = Arrivals()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.perf_counter()
            tag = str(json.loads(body)["data"]["tag"])
            with arrivals.lock:
                arrivals.at.setdefault(tag, now)
                arrivals.count += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", arrivals
    finally:
        server.shutdown()
        server.server_close()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _emit(ours: Conveyor, *tags: str) -> float:
    """Events through the outbox in one transaction, committed then published; returns the
    commit time."""
    with ours.db.connection() as conn:
        targets = subscribers(conn, ours.tenant_id)
        events = [NewEvent("job.succeeded", None, {"tag": tag}) for tag in tags]
        ids = write_events(
            conn, ours.tenant_id, events, targets, delivery_policy(ours.settings), utcnow()
        )
    committed = time.perf_counter()
    publish_deliveries(ours.settings, ids)
    return committed


def _wait_all(arrivals: Arrivals, tags: list[str], what: str) -> None:
    timeout = len(tags) / SLOWEST_PER_S + 30
    wait_until(lambda: all(t in arrivals.at for t in tags), what, timeout=timeout)


def conveyor_deliveries(ours: Conveyor, arrivals: Arrivals, n: int) -> Measure:
    """A burst of n events, then PACED_N events at PACED_PER_S; figures from both."""

    def measure(run: int) -> dict[str, float]:
        arrivals.clear()
        burst = [f"b{run}-{i}" for i in range(n)]
        committed = _emit(ours, *burst)
        _wait_all(arrivals, burst, f"{n} burst deliveries")
        elapsed = max(arrivals.at[t] for t in burst) - committed
        burst_lat = [arrivals.at[t] - committed for t in burst]
        paced = [f"p{run}-{i}" for i in range(PACED_N)]
        paced_at: dict[str, float] = {}
        start = time.perf_counter()
        for i, tag in enumerate(paced):
            pause = start + i / PACED_PER_S - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            paced_at[tag] = _emit(ours, tag)
        _wait_all(arrivals, paced, f"{PACED_N} paced deliveries")
        paced_lat = [arrivals.at[t] - paced_at[t] for t in paced]
        if arrivals.count != n + PACED_N:
            raise BenchError(f"{arrivals.count} arrivals for {n + PACED_N} events (duplicates?)")
        return {
            "deliveries_per_s": n / elapsed,
            "burst_p95_ms": _p(burst_lat, 0.95) * 1000,
            "paced_p50_ms": statistics.median(paced_lat) * 1000,
            "paced_p95_ms": _p(paced_lat, 0.95) * 1000,
        }

    return measure


def bare_posts(url: str, arrivals: Arrivals, n: int) -> Measure:
    """The same number of JSON POSTs from CONCURRENCY threads, keep-alive, nothing else."""
    local = threading.local()

    def post(tag: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = json.dumps({"type": "job.succeeded", "data": {"tag": tag}})
        session.post(url, data=body, timeout=10).raise_for_status()

    def measure(run: int) -> dict[str, float]:
        arrivals.clear()
        tags = [f"r{run}-{i}" for i in range(n)]
        started = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(post, tags))
        return {"deliveries_per_s": n / (time.perf_counter() - started)}

    return measure


def run(opts: Options) -> ScenarioResult:
    """Measure both, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    # One endpoint may use every worker thread here (the default cap is 4 per endpoint).
    extra = {"outbound_allow_loopback": "true", "webhook_endpoint_concurrency": str(CONCURRENCY)}
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        url, arrivals = stack.enter_context(receiver())
        ours = stack.enter_context(conveyor(opts, conn, extra=extra))
        say(f"{NAME}: starting the worker")
        queues = "webhooks,data,maintenance"
        worker = stack.enter_context(
            worker_process(ours.site, opts.workdir, "threads", CONCURRENCY, queues)
        )
        stack.enter_context(beat_process(ours.site, opts.workdir))
        prove_consuming(ours.settings, ours.db, ours.tenant_id, worker)
        # Registered after the probe job, whose own job.succeeded would otherwise arrive too.
        with ours.db.session() as session:
            sealed = SecretBox(ours.settings).seal(generate_secret())
            create_endpoint(session, ours.tenant_id, url, "bench", [], sealed, utcnow())
        warm = [f"w-{i}" for i in range(20)]
        for tag in warm:
            _emit(ours, tag)
        _wait_all(arrivals, warm, "warm-up deliveries")
        systems = {
            CONVEYOR: conveyor_deliveries(ours, arrivals, n),
            BASELINE: bare_posts(url, arrivals, n),
        }
        series = interleave(NAME, opts.runs, systems, UNITS)
    return ScenarioResult(
        NAME,
        {
            "n": n,
            "paced_n": PACED_N,
            "paced_per_s": PACED_PER_S,
            "runs": opts.runs,
            "db": opts.db,
            "conveyor": f"one worker process, threads -c {CONCURRENCY}, queue webhooks",
            "baseline": f"{CONCURRENCY} threads POSTing with keep-alive sessions",
        },
        series,
        TARGETS,
        [
            "The burst's events commit in one transaction (a backlog appearing at once); the "
            "paced ones one transaction each, as finishing jobs write them.",
            "The receiver runs in the bench process (answers 200 with an empty body).",
            f"CONVEYOR_WEBHOOK_ENDPOINT_CONCURRENCY={CONCURRENCY} (default 4), so the one "
            "endpoint may use every thread; beat runs (a busy delivery would come back at "
            "the next due-job poll).",
        ],
    )
