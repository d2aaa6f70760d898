"""The solver-independent validator: the last check before an allocation leaves the engine.

It re-derives every guardrail from the published chute map with plain numpy, sharing no code
with the solver path except :meth:`GuardrailSet.bounds` and :func:`effective_minimums`, the
two definitions of what the limits *are* (so the projection's documented priority, budget
over minimums, is judged by the same rule it was built with). A bug in the model, the
reductions or the chute map shows up here as a violation instead of reaching the floor.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from decision.state import IDLE
from floor.guardrails import GuardrailSet, effective_minimums

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def validate_allocation(
    owner: IntArray,
    counts: IntArray,
    guardrails: GuardrailSet,
    chute_available: BoolArray,
    previous_owner: IntArray,
    *,
    budget: int | None = None,
    ignore_move_cap: bool = False,
) -> list[str]:
    """Every way ``owner``/``counts`` break the guardrails; an empty list means valid.

    Checks: shapes; owner values are ``IDLE`` or a destination index; no out-of-service chute
    is assigned; ``counts`` match the map; the total fits ``total_eject_chutes`` and the
    in-service chutes (or ``budget`` if smaller); per-destination maximums; per-destination
    minimums as far as the budget and the move cap allow (:func:`effective_minimums`); moves
    (chutes gaining a destination they did not hold) within ``max_moves_per_interval``
    unless ``ignore_move_cap``.
    """
    owner = np.asarray(owner, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    available = np.asarray(chute_available, dtype=bool)
    previous = np.asarray(previous_owner, dtype=np.int64)
    n_chutes, n_dest = owner.shape[0], counts.shape[0]
    if available.shape != (n_chutes,) or previous.shape != (n_chutes,):
        return [
            f"shape mismatch: owner {owner.shape}, chute_available {available.shape}, "
            f"previous_owner {previous.shape}"
        ]
    problems: list[str] = []

    bad = np.flatnonzero((owner < IDLE) | (owner >= n_dest))
    if bad.size:
        problems.append(f"chute {int(bad[0])}: owner {int(owner[bad[0]])} is not a destination")
        return problems  # the remaining checks index by owner
    out = np.flatnonzero(~available & (owner != IDLE))
    if out.size:
        problems.append(f"chute {int(out[0])}: out of service but assigned")
    if bool((counts < 0).any()):
        problems.append("counts: negative")
    mapped = np.bincount(owner[owner != IDLE], minlength=n_dest)
    mismatch = np.flatnonzero(mapped != counts)
    if mismatch.size:
        d = int(mismatch[0])
        problems.append(f"destination {d}: counts say {int(counts[d])}, map has {int(mapped[d])}")

    in_service = int(available.sum())
    limit = min(in_service, guardrails.total_eject_chutes)
    if budget is not None:
        limit = min(limit, budget)
    total = int(mapped.sum())
    if total > guardrails.total_eject_chutes:
        problems.append(
            f"{total} chutes allocated, total_eject_chutes is {guardrails.total_eject_chutes}"
        )
    if total > limit:
        problems.append(f"{total} chutes allocated, budget is {limit}")

    low, high = guardrails.bounds(n_dest)
    over = np.flatnonzero(mapped > high)
    if over.size:
        d = int(over[0])
        problems.append(f"destination {d}: {int(mapped[d])} chutes, maximum {int(high[d])}")
    previous_held = np.bincount(previous[available & (previous != IDLE)], minlength=n_dest)
    cap = guardrails.move_cap(ignore_move_cap)
    floor = effective_minimums(low, previous_held, limit, cap)
    under = np.flatnonzero(mapped < floor)
    if under.size:
        d = int(under[0])
        problems.append(
            f"destination {d}: {int(mapped[d])} chutes, minimum {int(floor[d])} "
            f"(guardrail {int(low[d])})"
        )
    moves = int(((owner != IDLE) & (owner != previous)).sum())
    if cap is not None and moves > cap:
        problems.append(f"{moves} moves, max_moves_per_interval is {cap}")
    return problems


__all__ = ["validate_allocation"]
