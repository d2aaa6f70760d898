"""``chuteflow ops serve``: the live operations page, an aiohttp application.

Why aiohttp: it is already installed (faust runs on it), it is maintained by aio-libs, serves
static files and JSON from one small application object, and comes with a test client; a
second web framework (Starlette + uvicorn) would add two dependencies for the same few
routes. Why no JavaScript library: the page draws its few line charts as inline SVG from about
a hundred lines of its own code (``ops/static/app.js``), so there is no npm build, no vendored
bundle to keep patched, and nothing loaded from a CDN (the page works on a floor network
without internet). The page polls ``/api/state`` every second; the state is built from an
in-memory model a Kafka follower thread keeps current (``ops/feed.py``), so a poll never
touches Kafka. ``/metrics`` serves the page's own gauges (the shadow twin's,
``ops/shadow_metrics.py``) for Prometheus.

Read-only unless a token is configured. ``POST /api/actions/{promote,abort,rollback}`` needs
the token (``Authorization: Bearer ...``) and a ``confirm`` field equal to the site id (the
page asks the operator to type it); without a configured token every action answers 403. The
actions run the very code of ``chuteflow policy promote|abort|rollback`` (passed in by the CLI
as :data:`Actions`), one at a time.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ops.feed import KafkaFeed
from ops.health import HealthScraper
from ops.model import OpsModel
from ops.page_state import snapshot as page_snapshot
from ops.shadow_metrics import ShadowTwinMetrics

ACTIONS = ("promote", "abort", "rollback")
Actions = Callable[[str, str, str], tuple[int, str]]
"""(action, site, reason) -> (exit code, what the command printed): the CLI's own verbs."""
MAX_REASON = 500
_STATIC = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class OpsSettings:
    """What the page serves and who may act."""

    token: str | None
    actions: Actions | None
    title: str = "chuteflow operations"


def _static(name: str) -> bytes:
    return resources.files("ops").joinpath("static", name).read_bytes()


class OpsPage:
    """The page's state sources and HTTP handlers."""

    def __init__(
        self,
        model: OpsModel,
        settings: OpsSettings,
        feed: KafkaFeed | None = None,
        health: HealthScraper | None = None,
        shadow_twin: ShadowTwinMetrics | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.feed = feed
        self.health = health
        self.shadow_twin = shadow_twin
        self._action_lock = threading.Lock()

    @property
    def actions_enabled(self) -> bool:
        return bool(self.settings.token) and self.settings.actions is not None

    def state(self) -> dict[str, Any]:
        """Everything the page shows, as one JSON document."""
        snapshot = page_snapshot(self.model)
        snapshot.update(
            title=self.settings.title,
            server_time=time.time(),
            feed=None if self.feed is None else self.feed.status.as_dict(),
            workers=[] if self.health is None else self.health.snapshot(),
            actions={
                "enabled": self.actions_enabled,
                "why_disabled": None
                if self.actions_enabled
                else "read-only: start `chuteflow ops serve` with --token or CHUTEFLOW_OPS_TOKEN "
                "to enable promote, abort and rollback",
            },
        )
        return snapshot

    async def index(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        response = web.Response(body=_static(name), content_type=_STATIC[name])
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def get_state(self, request: web.Request) -> web.Response:
        response = web.json_response(self.state())
        response.headers["Cache-Control"] = "no-store"
        response.enable_compression()
        return response

    async def no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # a browser asks; an empty answer keeps its log clean

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def metrics(self, request: web.Request) -> web.Response:
        """The page's own gauges for Prometheus (the shadow twin's, ``ops/shadow_metrics.py``):
        a scrape reads the last results, it never waits on a comparison."""
        if self.shadow_twin is None:
            raise web.HTTPNotFound()
        body = generate_latest(self.shadow_twin.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def act(self, request: web.Request) -> web.Response:
        """Promote, abort or roll back one site: token, confirmation, then the CLI's verb."""
        action = request.match_info["action"]
        if action not in ACTIONS:
            return _refuse(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if not self.actions_enabled:
            return _refuse(403, "actions are disabled: no token configured")
        given = request.headers.get("Authorization", "")
        token = self.settings.token or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _refuse(401, "wrong or missing token")
        try:
            body = await request.json()
        except ValueError:
            return _refuse(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _refuse(400, "the body must be a JSON object")
        site = body.get("site")
        reason = body.get("reason") or f"{action} from the operations page"
        if not isinstance(site, str) or not site:
            return _refuse(400, "give the site")
        if body.get("confirm") != site:
            return _refuse(400, f"not confirmed: type the site id {site!r} to confirm")
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            return _refuse(400, f"reason: at most {MAX_REASON} characters of text")
        actions = self.settings.actions
        assert actions is not None

        def run() -> tuple[int, str]:
            with self._action_lock:
                return actions(action, site, reason)

        code, output = await asyncio.get_running_loop().run_in_executor(None, run)
        return web.json_response(
            {"action": action, "site": site, "exit_code": code, "output": output},
            status=200 if code == 0 else 409,
        )


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_app(page: OpsPage) -> web.Application:
    """The aiohttp application; starts and stops the page's feed and scraper with itself."""
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/", page.index)
    app.router.add_get("/static/{name}", page.static)
    app.router.add_get("/api/state", page.get_state)
    app.router.add_get("/healthz", page.healthz)
    app.router.add_get("/metrics", page.metrics)
    app.router.add_get("/favicon.ico", page.no_icon)
    app.router.add_post("/api/actions/{action}", page.act)

    async def start(app: web.Application) -> None:
        if page.feed is not None:
            page.feed.start()
        if page.health is not None:
            page.health.start()
        if page.shadow_twin is not None:
            page.shadow_twin.start()

    async def stop(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        if page.feed is not None:
            await loop.run_in_executor(None, page.feed.stop)
        if page.health is not None:
            await loop.run_in_executor(None, page.health.stop)
        if page.shadow_twin is not None:
            await loop.run_in_executor(None, page.shadow_twin.stop)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(page: OpsPage, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Run the page until interrupted; ``on_ready`` gets its URL once it listens."""

    async def main() -> None:
        runner = web.AppRunner(make_app(page), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        on_ready(f"http://{host}:{bound}/")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


__all__ = ["ACTIONS", "Actions", "OpsPage", "OpsSettings", "make_app", "serve"]
