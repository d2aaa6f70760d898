"""Evaluation suites: reproducible days of the right count, held-out and other-site history,
graded drift, the fit score, and the tables of real days."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from evaluation.report import markdown, suites_markdown, summarize
from evaluation.run import RunSpec, run_all, specs_for, suite_specs
from evaluation.suites import (
    CONCENTRATION_SHARE,
    DRIFT,
    GROUP_SUITES,
    HISTORY_SUITES,
    SUITES,
    BuiltDay,
    SuiteError,
    SuiteOptions,
    build_suite_day,
    parse_suites,
    suite_days,
    with_drift,
)
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from twin.fit import GroupFit, day_fit, site_history
from twin.groups import nearest_group, sample_day
from twin.history import generate_history

SCENARIO = load_scenario("small")
GROUPS = default_groups(SCENARIO)
OPTIONS = SuiteOptions(groups=(0, 4), seeds=2, history_days=4)


def _same(a: BuiltDay, b: BuiltDay) -> bool:
    return (
        np.array_equal(a.demand.arrivals, b.demand.arrivals)
        and np.array_equal(a.demand.expected_share, b.demand.expected_share)
        and a.demand.day_start == b.demand.day_start
        and (a.group, a.group_kind) == (b.group, b.group_kind)
    )


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_gives_reproducible_days_of_the_right_count(suite: str) -> None:
    days = suite_days(suite, GROUPS, OPTIONS)
    expected = OPTIONS.history_days if suite in HISTORY_SUITES else 2 * OPTIONS.seeds
    assert len(days) == expected
    assert [d.index for d in days] == list(range(expected))
    assert days == suite_days(suite, GROUPS, OPTIONS)
    built = [build_suite_day(SCENARIO, GROUPS, d) for d in days]
    for day, first in zip(days, built, strict=True):
        assert _same(first, build_suite_day(SCENARIO, GROUPS, day))
        assert 0 <= first.group < GROUPS.n_groups
        assert first.group_kind == ("nearest" if suite in HISTORY_SUITES else "group")
        assert first.demand.total > 0
    # distinct days, not one day repeated
    assert not _same(built[0], built[-1])


def test_group_based_suites_sample_the_listed_groups() -> None:
    for suite in GROUP_SUITES:
        days = suite_days(suite, GROUPS, OPTIONS)
        assert [d.group for d in days] == [0, 0, 4, 4]
        assert len({d.seed for d in days}) == OPTIONS.seeds


def test_drift_0_equals_the_group_days() -> None:
    group = suite_days("group", GROUPS, OPTIONS)
    drift = suite_days("drift-0", GROUPS, OPTIONS)
    for g, d in zip(group, drift, strict=True):
        assert _same(build_suite_day(SCENARIO, GROUPS, g), build_suite_day(SCENARIO, GROUPS, d))


def test_drift_reassigns_that_fraction_of_destinations_and_keeps_the_plan() -> None:
    base = sample_day(GROUPS, 3, SCENARIO, seed=7)
    d = SCENARIO.n_destinations
    changed: dict[str, set[int]] = {}
    for name, fraction in DRIFT.items():
        drifted = with_drift(base, fraction, seed=7)
        assert drifted.total == base.total
        np.testing.assert_array_equal(drifted.expected_share, base.expected_share)
        # volumes move between destinations; the multiset of destination series is the same
        before = sorted(map(tuple, base.arrivals.T.tolist()))
        assert sorted(map(tuple, drifted.arrivals.T.tolist())) == before
        moved = {
            j for j in range(d) if not np.array_equal(drifted.arrivals[:, j], base.arrivals[:, j])
        }
        assert len(moved) == round(fraction * d)  # every picked destination got another's volume
        changed[name] = moved
    assert changed["drift-25"] <= changed["drift-50"] <= changed["drift-100"]
    assert len(changed["drift-100"]) == d


def test_drift_grades_the_plan_mismatch() -> None:
    fit = GroupFit(GROUPS)
    scores = []
    for name in DRIFT:
        days = suite_days(name, GROUPS, OPTIONS)
        built = [build_suite_day(SCENARIO, GROUPS, day) for day in days]
        mixes = [b.demand.interval_arrivals().sum(axis=0) / b.demand.total for b in built]
        scores.append(
            np.mean(
                [
                    0.5 * np.abs(m - fit.mix[b.group]).sum()
                    for m, b in zip(mixes, built, strict=True)
                ]
            )
        )
    assert scores == sorted(scores)
    assert scores[0] < 0.1 < scores[-1]


def test_history_days_are_the_sites_own_days_after_the_fit_period() -> None:
    history = site_history(GROUPS)
    assert (history.seed, history.end) == (2025, date(2025, 1, 1))
    days = suite_days("history", GROUPS, OPTIONS)
    assert [d.day for d in days] == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert {d.history_seed for d in days} == {2025}
    # a window of the seed reproduces the same days as a longer one
    real = list(generate_history(SCENARIO, date(2024, 12, 20), 16, 2025))[-4:]
    for day, truth in zip(days, real, strict=True):
        built = build_suite_day(SCENARIO, GROUPS, day)
        np.testing.assert_array_equal(built.demand.interval_arrivals(), truth.counts)
        assert built.demand.day_start.date() == truth.day
        assert built.group == nearest_group(GROUPS, truth.counts)
        np.testing.assert_array_equal(
            built.demand.expected_share, GROUPS.expected_share(built.group)
        )


def test_other_history_days_differ_from_the_sites_own() -> None:
    own = suite_days("history", GROUPS, OPTIONS)
    other = suite_days("other", GROUPS, OPTIONS)
    assert [d.day for d in other] == [d.day for d in own]
    assert [d.history_seed for d in other] == [11, 12, 13, 11]
    fit = GroupFit(GROUPS)
    for mine, theirs in zip(own, other, strict=True):
        a = build_suite_day(SCENARIO, GROUPS, mine).demand.interval_arrivals()
        b = build_suite_day(SCENARIO, GROUPS, theirs).demand.interval_arrivals()
        assert not np.array_equal(a, b)
        assert fit.score(b)[0] > 2 * fit.score(a)[0]
    with pytest.raises(SuiteError):
        suite_days("other", GROUPS, SuiteOptions(groups=(0,), other_seeds=(11, 2025)))


def test_parse_suites() -> None:
    assert parse_suites("all") == list(SUITES)
    assert parse_suites("history, drift-100,history") == ["history", "drift-100"]
    with pytest.raises(SuiteError):
        parse_suites("history,nope")


def test_fit_score_separates_other_sites_from_the_sites_own_days() -> None:
    groups_day = sample_day(GROUPS, 2, SCENARIO, seed=3).interval_arrivals()
    assert day_fit(SCENARIO, GROUPS, groups_day).fits
    # held-out days of the site's own history fit (spike days included: the groups were
    # fitted on days like them)
    own = list(generate_history(SCENARIO, date(2025, 1, 1), 40, 2025))
    assert any(d.is_spike for d in own)
    assert all(day_fit(SCENARIO, GROUPS, d.counts).fits for d in own)
    other = next(generate_history(SCENARIO, date(2025, 1, 1), 1, 12))
    fit = day_fit(SCENARIO, GROUPS, other.counts)
    assert not fit.fits and fit.score > fit.threshold
    warning = fit.warning("x.csv")
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning: day x.csv matches none of the site's groups")
    assert day_fit(SCENARIO, GROUPS, groups_day).warning("y") is None
    # GroupFit.nearest is nearest_group
    for d in own:
        assert GroupFit(GROUPS).nearest(d.counts) == nearest_group(GROUPS, d.counts)


def test_runs_are_the_same_whatever_the_worker_count() -> None:
    specs = suite_specs(
        "small", ["static"], "history", SuiteOptions(groups=(0,), history_days=2), "small"
    )
    specs += specs_for("small", ["proportional"], [1], 1, "small", "drift-50")
    specs.append(RunSpec("small", "static", 2, 100_001, "small", "spike", oracle_plan=True))
    one = run_all(specs, workers=1)
    two = run_all(specs, workers=2)
    assert one == two
    assert [r["day_kind"] for r in one] == ["history", "history", "drift-50", "spike"]
    assert one[0]["group_kind"] == "nearest" and one[2]["group_kind"] == "group"
    assert one[-1]["policy"] == "static (oracle plan)"


def test_oracle_rows_follow_their_policy() -> None:
    specs = suite_specs(
        "small",
        ["static", "proportional"],
        "group",
        SuiteOptions(groups=(0,), seeds=2),
        "small",
        True,
    )
    assert [(s.policy, s.oracle_plan) for s in specs] == [
        ("static", False),
        ("static", False),
        ("static", True),
        ("static", True),
        ("proportional", False),
        ("proportional", False),
        ("proportional", True),
        ("proportional", True),
    ]


def _rows(kind: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for policy, base in (("a", 0.1), ("b", 0.2)):
        for index, group in enumerate([3, 3, 3, 5]):
            rows.append(
                {
                    "policy": policy,
                    "group": group,
                    "group_kind": kind,
                    "seed": index,
                    "recirculation_rate": base + (0.1 if group == 5 else 0.0),
                    "throughput_per_hour": 1000.0,
                    "recirculation_amount": 10,
                    "unsorted": 1,
                }
            )
    return rows


def test_real_days_are_tabled_by_day_and_nearest_group() -> None:
    nearest = summarize(_rows("nearest"))
    body = nearest["a"]
    assert isinstance(body, dict)
    overall = body["overall"]["recirculation_rate"]
    assert overall["mean_over_days"] == pytest.approx(0.125)  # each day once
    assert overall["mean"] == pytest.approx(0.15)  # each group once
    assert overall["worst_group"] == 5
    text = markdown(nearest, "t")
    assert "mean over days" in text and "| nearest group | days |" in text
    assert "| a | recirculation_rate | 12.50% |" in text
    table = suites_markdown({"history": nearest, "group": summarize(_rows("group"))}, "s")
    assert "| policy | history | group |" in table
    assert "| a | 12.50% (~g5: 20.00%) | 15.00% (g5: 20.00%) |" in table


def test_concentration_days_grow_one_big_destination_to_the_share() -> None:
    group = suite_days("group", GROUPS, OPTIONS)
    concentrated = suite_days("concentration", GROUPS, OPTIONS)
    big = max(2, round(0.1 * SCENARIO.n_destinations))
    for g, c in zip(group, concentrated, strict=True):
        base = build_suite_day(SCENARIO, GROUPS, g).demand
        day = build_suite_day(SCENARIO, GROUPS, c).demand
        grown = np.flatnonzero((day.arrivals != base.arrivals).any(axis=0))
        assert len(grown) == 1  # one destination; every other one as the group day drew it
        destination = int(grown[0])
        share = day.arrivals[:, destination].sum() / day.total
        assert abs(share - CONCENTRATION_SHARE) < 1.0 / day.total
        rank = np.argsort(-base.expected_share.mean(axis=0), kind="stable").tolist()
        assert rank.index(destination) < big
        np.testing.assert_array_equal(day.expected_share, base.expected_share)
