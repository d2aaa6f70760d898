"""The worker's HTTP endpoint on ``--metrics-port``: ``/metrics``, ``/healthz``, ``/readyz``.

- ``/metrics``: the Prometheus text exposition (:mod:`stream.metrics`); also served at ``/``
  for scrapers configured with the bare address.
- ``/healthz``: 200 while the process runs and its event loop answers (an orchestrator
  restarts the worker on anything else). Answered from the HTTP thread: it says the process
  is alive, and whether the event loop has turned recently (a blocked loop serves nothing).
- ``/readyz``: 200 once the worker can serve: the group has assigned it its partitions (and
  faust's table recovery is done), its policies are loaded, and every assigned input
  partition is within ``max_lag`` records of its end; 503 before, with the reason as JSON.
  A rolling deploy or a load balancer waits for it; ``chuteflow_ready`` mirrors it.

A small ``http.server`` of our own instead of ``prometheus_client.start_http_server``: that one
answers every path with the metrics, so ``/readyz`` could not say 503.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from floor.errors import ChuteflowError

DEFAULT_READY_MAX_LAG = 1000
"""Records an assigned input partition may be behind its end and the worker still ready: a
few seconds of a large site's floor (~6k records per interval per topic), so a worker that is
reading steadily counts as caught up, one replaying a backlog does not."""
LOOP_STALE_S = 30.0
"""A loop that has not turned for this long makes ``/healthz`` answer 503."""


@dataclass
class Readiness:
    """What ``/readyz`` checks; the worker's event loop updates it, the HTTP thread reads it.

    Args:
        lag: records behind per assigned input partition (None: not known yet).
        max_lag: the most records a partition may be behind (``--ready-max-lag``).
        busy: True while faust rebalances or recovers tables (not ready then).
    """

    lag: Callable[[], Mapping[tuple[str, int], int | None]]
    max_lag: int = DEFAULT_READY_MAX_LAG
    busy: Callable[[], bool] = lambda: False
    assigned: bool = False
    """A rebalance has completed (set on ``on_rebalance_complete``, cleared on revocation)."""
    policies_loaded: bool = False
    """Every site's engine and route are built (set once the worker is about to run)."""
    loop_turned: float = field(default_factory=time.monotonic)
    """Monotonic time the event loop last ticked (:meth:`tick`)."""

    def tick(self) -> None:
        self.loop_turned = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        quiet = time.monotonic() - self.loop_turned
        if quiet > LOOP_STALE_S:
            return False, f"event loop has not turned for {quiet:.0f} s"
        return True, "alive"

    def check(self) -> tuple[bool, str]:
        """(ready, why not / ``ready``)."""
        if not self.policies_loaded:
            return False, "policies not loaded"
        if not self.assigned:
            return False, "partitions not assigned"
        try:
            if self.busy():
                return False, "rebalancing or recovering tables"
            lag = dict(self.lag())
        except Exception as error:  # the consumer is between states: not ready, say why
            return False, f"consumer state unavailable: {type(error).__name__}"
        unknown = sorted(f"{t}/{p}" for (t, p), n in lag.items() if n is None)
        if unknown:
            return False, f"end offset not fetched yet: {', '.join(unknown[:6])}"
        behind = {f"{t}/{p}": n for (t, p), n in lag.items() if n is not None and n > self.max_lag}
        if behind:
            worst = sorted(behind.items(), key=lambda kv: -kv[1])[:6]
            listed = ", ".join(f"{k} {n}" for k, n in worst)
            return False, f"behind by more than {self.max_lag} records: {listed}"
        return True, "ready"

    def ready(self) -> bool:
        return self.check()[0]


def serve(
    registry: CollectorRegistry,
    readiness: Readiness | None,
    port: int,
    addr: str = "0.0.0.0",
) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` in a daemon thread.

    Raises:
        ChuteflowError: the port cannot be bound (in use, or not allowed).
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/metrics"):
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                ok, why = (True, "alive") if readiness is None else readiness.alive()
                self._json(200 if ok else 503, {"status": why})
            elif path == "/readyz":
                ok, why = (True, "ready") if readiness is None else readiness.check()
                self._json(200 if ok else 503, {"ready": ok, "status": why})
            else:
                self._json(404, {"error": f"no such path {path[:100]!r}"})

        def _json(self, code: int, body: object) -> None:
            self._send(code, "application/json", (json.dumps(body) + "\n").encode())

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes and probes every few seconds are not worth a log line each."""

    try:
        server = ThreadingHTTPServer((addr, port), Handler)
    except OSError as error:  # a second worker on the host with the same port: one line
        raise ChuteflowError(
            f"--metrics-port {port}: cannot listen on {addr}:{port} "
            f"({error.strerror or error}); give another port"
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="chuteflow-http", daemon=True).start()
    return server


__all__ = ["DEFAULT_READY_MAX_LAG", "Readiness", "serve"]
