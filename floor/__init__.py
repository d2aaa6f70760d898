"""The ground floor: what a site *is* (scenario, guardrails, layout and physics, day-type
groups, day plan, seeds, errors, config). Every other room imports it; it imports none of them."""
