"""Live policy operations: what served when, shadow comparison and canary gates, from Kafka.

Everything here reads what the worker and the floor wrote (allocations, shadow decisions, floor
events, the control topic) and writes only routes: it can be stopped and restarted at any time
and recomputes the same answers (``shadow report`` and the canary gate run the counterfactual
twin, ``twin/counterfactual.py``, on the arrivals the floor really reported).
"""
