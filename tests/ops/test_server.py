"""The page's HTTP surface without a broker: static files under a strict CSP, the state as
JSON, and actions only with the token and the typed confirmation.

The actions callable here records its calls (the HTTP checks are what is under test; the real
``chuteflow policy`` verbs run behind the page in ``test_ops_browser.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from chuteflow.cli import build_parser
from chuteflow.cli.ops import policy_actions
from ops.model import OpsModel
from ops.server import OpsPage, OpsSettings, make_app

Check = Callable[[TestClient[Any, Any]], Awaitable[None]]


def _run(page: OpsPage, check: Check) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app(page))) as client:
            await check(client)

    asyncio.run(main())


def test_the_page_and_its_state_are_served_read_only_without_a_token() -> None:
    calls: list[tuple[str, str, str]] = []

    def actions(action: str, site: str, reason: str) -> tuple[int, str]:
        calls.append((action, site, reason))
        return 0, "done"

    page = OpsPage(OpsModel(), OpsSettings(token=None, actions=actions))

    async def check(client: TestClient[Any, Any]) -> None:
        index = await client.get("/")
        assert index.status == 200
        assert "script-src 'self'" in index.headers["Content-Security-Policy"]
        assert '<script src="/static/app.js"' in await index.text()
        script = await client.get("/static/app.js")
        assert script.status == 200 and "lineChart" in await script.text()
        assert (await client.get("/static/secret.py")).status == 404
        assert (await client.get("/static/..%2Fmodel.py")).status == 404
        state = await (await client.get("/api/state")).json()
        assert state["sites"] == [] and state["actions"]["enabled"] is False
        assert "--token" in state["actions"]["why_disabled"]
        refused = await client.post(
            "/api/actions/rollback",
            json={"site": "s", "confirm": "s"},
            headers={"Authorization": "Bearer anything"},
        )
        assert refused.status == 403

    _run(page, check)
    assert calls == []


def test_an_action_needs_the_token_and_the_site_typed_to_confirm() -> None:
    calls: list[tuple[str, str, str]] = []

    def actions(action: str, site: str, reason: str) -> tuple[int, str]:
        calls.append((action, site, reason))
        return (0, "revision 4 (abort)") if site == "site-a" else (2, "no canary in progress")

    page = OpsPage(OpsModel(), OpsSettings(token="s3cret", actions=actions))
    auth = {"Authorization": "Bearer s3cret"}

    async def check(client: TestClient[Any, Any]) -> None:
        body = {"site": "site-a", "confirm": "site-a", "reason": "looks wrong"}
        assert (await client.post("/api/actions/abort", json=body)).status == 401
        wrong = {"Authorization": "Bearer s3cre"}
        assert (await client.post("/api/actions/abort", json=body, headers=wrong)).status == 401
        unconfirmed = {**body, "confirm": "yes"}
        answer = await client.post("/api/actions/abort", json=unconfirmed, headers=auth)
        assert answer.status == 400 and "confirm" in (await answer.json())["error"]
        assert (await client.post("/api/actions/delete", json=body, headers=auth)).status == 404
        not_json = await client.post("/api/actions/abort", data=b"site=a", headers=auth)
        assert not_json.status == 400
        done = await client.post("/api/actions/abort", json=body, headers=auth)
        assert done.status == 200
        assert await done.json() == {
            "action": "abort",
            "site": "site-a",
            "exit_code": 0,
            "output": "revision 4 (abort)",
        }
        other = {"site": "site-b", "confirm": "site-b"}
        failed = await client.post("/api/actions/promote", json=other, headers=auth)
        assert failed.status == 409 and (await failed.json())["exit_code"] == 2
        state = await (await client.get("/api/state")).json()
        assert state["actions"]["enabled"] is True

    _run(page, check)
    assert calls == [
        ("abort", "site-a", "looks wrong"),
        ("promote", "site-b", "promote from the operations page"),
    ]


def test_the_page_actions_are_the_policy_verbs_with_their_own_errors() -> None:
    """The page's action runs ``chuteflow policy rollback`` in-process: an unreachable broker
    is its one-line error and exit code 2, handed back to the page (not a traceback)."""
    args = build_parser().parse_args(["ops", "serve", "--bootstrap", "127.0.0.1:1"])
    code, output = policy_actions(args)("rollback", "site-x", "r")
    assert code == 2 and output.startswith("chuteflow: ") and "Kafka" in output, output
    assert "Traceback" not in output and "\n" not in output
