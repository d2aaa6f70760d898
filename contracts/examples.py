"""One example per message type, for the AsyncAPI document (``contracts/asyncapi.py``).

Taken from real output: the floor events and the allocation are the twin's and the worker's
records of the small site's 2025-01-06 (seed 5), the audit and route records are what the
worker wrote for them, the store record is ``drmarl-small``'s (its ``artifact`` cut to the
first bytes; the real one is 29,584 base64 characters), the alias is what ``chuteflow policy
alias set drmarl-small@5e6a0a4f champion`` writes for it, the site catalog entry is what
``chuteflow site add --site small --site-id site-small-2`` writes.
``tests/contracts/test_asyncapi.py`` validates every example against its model and its
exported schema, and fails when a message type has none.
"""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "package_inducted": [
        {
            "event_id": "site-small-000001",
            "event_time": "2025-01-06T06:00:03Z",
            "site_id": "site-small",
            "event_type": "package_inducted",
            "schema_version": 1,
            "package_id": "P000001",
            "destination": "D04",
            "station": 1,
            "attempt": 1,
        }
    ],
    "package_sorted": [
        {
            "event_id": "site-small-000002",
            "event_time": "2025-01-06T06:01:03Z",
            "site_id": "site-small",
            "event_type": "package_sorted",
            "schema_version": 1,
            "package_id": "P000001",
            "destination": "D04",
            "chute_id": "C003",
            "attempt": 1,
        }
    ],
    "package_recirculated": [
        {
            "event_id": "site-small-000003",
            "event_time": "2025-01-06T06:01:04Z",
            "site_id": "site-small",
            "event_type": "package_recirculated",
            "schema_version": 1,
            "package_id": "P000002",
            "destination": "D17",
            "attempt": 1,
            "reason": "no_chute_allocated",
            "to_exception": False,
        }
    ],
    "chute_state_changed": [
        {
            "event_id": "site-small-000004",
            "event_time": "2025-01-06T06:01:33Z",
            "site_id": "site-small",
            "event_type": "chute_state_changed",
            "schema_version": 1,
            "chute_id": "C004",
            "state": "swap_started",
            "destination": "D06",
        }
    ],
    "interval_closed": [
        {
            "event_id": "site-small-000393",
            "event_time": "2025-01-06T06:30:00Z",
            "site_id": "site-small",
            "event_type": "interval_closed",
            "schema_version": 1,
            "interval_index": 0,
            "interval_start": "2025-01-06T06:00:00Z",
            "interval_end": "2025-01-06T06:30:00Z",
            "events_in_interval": {
                "chuteflow.inductions.v1": 192,
                "chuteflow.sortation.v1": 186,
                "chuteflow.chute-state.v1": 3,
            },
        }
    ],
    "day_started": [
        {
            "event_id": "site-small-day-2025-01-06",
            "event_time": "2025-01-06T06:00:00Z",
            "site_id": "site-small",
            "event_type": "day_started",
            "schema_version": 1,
            "day_start": "2025-01-06T06:00:00Z",
        },
        {
            "event_id": "site-small-day-2025-01-07",
            "event_time": "2025-01-07T06:00:00Z",
            "site_id": "site-small",
            "event_type": "day_started",
            "schema_version": 1,
            "day_start": "2025-01-07T06:00:00Z",
            "day_type_group": 2,
        },
    ],
    "allocation_decided": [
        {
            "event_id": "site-small/2025-01-06.ffc9bbbe/1/proportional@1",
            "event_time": "2025-01-06T06:30:00Z",
            "site_id": "site-small",
            "event_type": "allocation_decided",
            "schema_version": 1,
            "decision_id": "site-small/2025-01-06.ffc9bbbe/1/proportional@1",
            "interval_index": 1,
            "interval_start": "2025-01-06T06:30:00Z",
            "chute_map": {
                "C001": "D04",
                "C002": "D01",
                "C003": "D02",
                "C004": "D06",
                "C005": "D09",
                "C006": "D10",
                "C007": "D19",
                "C008": "D13",
                "C009": "D14",
                "C010": "D11",
            },
            "chutes_per_destination": {
                "D01": 1,
                "D02": 1,
                "D04": 1,
                "D06": 1,
                "D09": 1,
                "D10": 1,
                "D11": 1,
                "D13": 1,
                "D14": 1,
                "D19": 1,
            },
            "policy_name": "proportional",
            "policy_version": "1",
            "guardrail_version": "small-2025.1",
            "solver_status": "optimal",
            "policy_sha256": None,
            "route_revision": 3,
            "fallback_reason": None,
            "fallback_from": None,
        }
    ],
    "decision_audit": [
        {
            "decision_id": "site-small/2025-01-06.ffc9bbbe/1/proportional@1",
            "fallback_reason": None,
            "inputs": {
                "arrivals_last_interval": 180,
                "backlog": 0,
                "chutes_available": 10,
                "chutes_held": 10,
                "chutes_open": 10,
                "recirculated_last_interval": 18,
                "records_counted": {
                    "chuteflow.chute-state.v1": 3,
                    "chuteflow.inductions.v1": 192,
                    "chuteflow.sortation.v1": 186,
                },
                "records_declared": {
                    "chuteflow.chute-state.v1": 3,
                    "chuteflow.inductions.v1": 192,
                    "chuteflow.sortation.v1": 186,
                },
            },
            "interval_index": 1,
            "moves": 1,
            "policy": {"name": "proportional", "sha256": None, "version": "1"},
            "policy_error": None,
            "proven_optimal": True,
            "route_revision": 3,
            "shadows": [
                {
                    "chutes_differing": 6,
                    "decision_id": "site-small/2025-01-06.ffc9bbbe/1/static@1",
                    "fallback_reason": None,
                    "policy": "static",
                    "total_ms": 3.093,
                }
            ],
            "site_id": "site-small",
            "solver_status": "optimal",
            "timings_ms": {
                "features": 0.256,
                "policy": 0.426,
                "projection": 0.901,
                "total": 1.67,
                "validation": 0.088,
            },
            "trigger": "interval_closed",
            "worker": "worker-1/4242",
        }
    ],
    "route_received": [
        {
            "action": "shadow",
            "kind": "route_received",
            "open_interval": None,
            "reason": "compare static in shadow",
            "revision": 3,
            "serving": "proportional",
            "shadows": ["static"],
            "site_id": "site-small",
            "worker": "worker-1/4242",
        }
    ],
    "dead_letter": [
        {
            "reason": "decode: invalid event at <root>: Invalid JSON: EOF while parsing an object "
            "at line 1 column 45",
            "kind": "decode",
            "topic": "chuteflow.sortation.v1",
            "partition": 1,
            "offset": 48213,
            "key_base64": "c2l0ZS1zbWFsbA==",
            "value_base64": "eyJldmVudF9pZCI6IngiLCJldmVudF90eXBlIjoicGFja2FnZV9zb3J0ZWQi",
            "value_bytes": 45,
            "truncated": False,
            "value_sha256": "17821531360e99138878a71a753ae7a27c3f5a42e533e26b728a42da9db75295",
        }
    ],
    "policy_route": [
        {
            "event_id": "route-9f2c",
            "event_time": "2025-01-06T05:30:00Z",
            "site_id": "site-small",
            "event_type": "policy_route",
            "schema_version": 1,
            "revision": 3,
            "serving": {"name": "proportional", "sha256": None},
            "shadows": [{"name": "static", "sha256": None}],
            "fallback": "proportional",
            "deadline_ms": None,
            "canary": None,
            "action": "shadow",
            "reason": "compare static in shadow",
            "issued_by": "ops-laptop",
        }
    ],
    "canary_check": [
        {
            "event_id": "canary-site-small-2025-01-06.ffc9bbbe-7",
            "event_time": "2025-01-06T10:00:02Z",
            "site_id": "site-small",
            "event_type": "canary_check",
            "schema_version": 1,
            "day_key": "2025-01-06.ffc9bbbe",
            "interval": 7,
            "first_interval": 2,
            "inducted": 1204,
            "canary_rate": 0.081,
            "incumbent_rate": 0.094,
            "limit": 0.1054,
            "passed": True,
            "failures": 0,
            "checks": 6,
            "outcome": "pending",
            "candidate": {
                "name": "drmarl-small",
                "sha256": "5e6a0a4fba5e0899c267316d3d4ea87b636dbfdce2a0a98b4f105f1142cb0c4f",
            },
            "incumbent": {"name": "proportional", "sha256": None},
            "canary_revision": 4,
            "verdict_revision": None,
            "latency_ms": 41.5,
            "reason": "0.0810 <= 1.1 x 0.0940 + 0.002",
        }
    ],
    "policy_store_record": [
        {
            "format": "chuteflow.policy/1",
            "metadata": {
                "name": "drmarl-small",
                "version": "5e6a0a4fba5e0899c267316d3d4ea87b636dbfdce2a0a98b4f105f1142cb0c4f",
                "size": 22187,
                "registered_at": "2025-01-06T05:00:00+00:00",
                "features": [
                    "arrivals_lag0",
                    "arrivals_lag1",
                    "arrivals_lag2",
                    "recirculated",
                    "backlog",
                    "chutes_held",
                    "chutes_held_in_service",
                    "chutes_open",
                    "expected_share",
                    "expected_load",
                    "free_chutes",
                    "time_of_day",
                    "plan_trust",
                ],
                "scenarios": ["small"],
                "guardrail_versions": {"small": "small-2025.1"},
                "settings": {"algo": "drmarl", "seed": 0},
                "report": None,
                "onnx_metadata": {
                    "features": "arrivals_lag0,arrivals_lag1,arrivals_lag2,recirculated,backlog,"
                    "chutes_held,chutes_held_in_service,chutes_open,expected_share,"
                    "expected_load,free_chutes,time_of_day,plan_trust",
                    "policy_name": "drmarl",
                    "policy_version": "small-seed1-ep300",
                    "scenario": "small",
                },
            },
            "artifact": "CAgSB3B5dG9yY2gaBTIuNS4x",
        }
    ],
    "policy_alias": [
        {
            "format": "chuteflow.policy-alias/1",
            "name": "drmarl-small",
            "alias": "champion",
            "version": "5e6a0a4fba5e0899c267316d3d4ea87b636dbfdce2a0a98b4f105f1142cb0c4f",
            "set_at": "2025-01-06T05:10:00+00:00",
        }
    ],
    "site_catalog_entry": [
        {
            "format": "chuteflow.site/1",
            "site_id": "site-small-2",
            "site_yaml": (
                "# small: added by chuteflow site add\n"
                "name: small\n"
                "site_id: site-small-2\n"
                "eject_chutes: 10\n"
                "recirculation_chutes: 1\n"
                "day_start: '2025-01-06T06:00:00Z'\n"
                "day_hours: 5.0\n"
                "interval_minutes: 30.0\n"
                "tick_seconds: 30.0\n"
                "default_groups: 9\n"
                "mean_packages_per_hour: 1200.0\n"
                "induction_stations: 3\n"
                "station_packages_per_hour: 1000.0\n"
                "travel_seconds: 60.0\n"
                "chute_packages_per_minute: 20.0\n"
                "container_capacity: 100\n"
                "swap_seconds: 90.0\n"
                "move_seconds: 120.0\n"
                "reinduction_seconds: 120.0\n"
                "chute_failures_per_hour: 0.01\n"
                "repair_minutes: 20.0\n"
                "max_attempts: 3\n"
                "max_chutes_per_destination: 4\n"
                "destinations: [D01, D02, D03, D04, D05, D06, D07, D08, D09, D10, D11, D12, D13, "
                "D14, D15, D16, D17, D18,\n"
                "  D19, D20]\n"
                "guardrails:\n"
                "  version: small-2025.1\n"
                "  total_eject_chutes: 10\n"
                "  min_chutes_per_destination: 0\n"
                "  min_overrides: {}\n"
                "  max_chutes_per_destination: 4\n"
                "  max_overrides: {}\n"
                "  max_moves_per_interval: 4\n"
            ),
            "groups_npz_base64": None,
            "groups_sha256": None,
            "policy": {"name": "proportional", "sha256": None},
            "revision": 1,
            "added_at": "2025-01-06T05:20:00+00:00",
            "added_by": "ops-1",
        }
    ],
}
