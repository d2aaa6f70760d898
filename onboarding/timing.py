"""Where an onboarding's time went: its manifest's stage times as a table (``chuteflow bench
onboard``), with what each stage ran, so a slow stage points at its knob (``--minutes`` sizes
training; ``eval_seeds`` and the suites size evaluation)."""

from __future__ import annotations

from typing import Any

STAGES = ("split", "groups", "train", "select", "evaluate", "bundle")
"""An onboarding's stages in the order they run (``onboarding.pipeline``)."""


def stage_timing(manifest: dict[str, Any]) -> dict[str, Any]:
    """The figures of one bundle: per-stage seconds and shares, total, and the run's size."""
    recorded = {str(k): float(v) for k, v in manifest["stage_seconds"].items()}
    order = [s for s in STAGES if s in recorded] + sorted(set(recorded) - set(STAGES))
    seconds = {stage: recorded[stage] for stage in order}
    stages_total = sum(seconds.values())
    total = float(manifest.get("total_seconds", stages_total))
    plan = manifest.get("training", {})
    members = len(plan.get("recipes", [])) * int(plan.get("seeds", 0))
    return {
        "site": manifest["site"],
        "fanout": manifest.get("fanout"),
        "total_seconds": round(total, 1),
        "stages": [
            {
                "stage": stage,
                "seconds": round(value, 1),
                "share": round(value / stages_total, 3) if stages_total > 0 else 0.0,
            }
            for stage, value in seconds.items()
        ],
        "resumed_stages": list(manifest.get("resumed_stages", [])),
        "training": {
            "members": members,
            "episodes": plan.get("episodes"),
            "cpus": plan.get("cpus"),
            "day_seconds": plan.get("day_seconds"),
        },
        "recommended_policy": manifest.get("recommended_policy"),
    }


def format_timing(timing: dict[str, Any]) -> str:
    """The table ``bench onboard`` prints."""
    lines = [f"{timing['site']}: {timing['total_seconds']:.1f} s on {timing['fanout']}"]
    lines.append(f"  {'stage':<10}{'seconds':>10}{'share':>8}")
    for row in timing["stages"]:
        lines.append(f"  {row['stage']:<10}{row['seconds']:>10.1f}{row['share']:>8.1%}")
    training = timing["training"]
    day = training["day_seconds"]
    lines.append(
        f"  training: {training['members']} members x {training['episodes']} episodes, sized "
        f"for {training['cpus']} CPU(s)"
        + (f" (a day-run {float(day):.3f} s)" if day is not None else "")
    )
    if timing["resumed_stages"]:
        lines.append(f"  resumed (times of the earlier run): {', '.join(timing['resumed_stages'])}")
    return "\n".join(lines)


__all__ = ["STAGES", "format_timing", "stage_timing"]
