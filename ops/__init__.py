"""The live operations page (``chuteflow ops serve``): a web page an operator keeps open.

Layer 5, beside ``training``: it reads what ``stream`` and ``rollout`` write and acts only
through the CLI's own verbs (passed in by ``chuteflow/cli/ops.py``). ``model`` turns Kafka
records into per-site state, ``page_state`` turns that into the page's JSON, ``feed`` follows
the topics into the model, ``health`` scrapes the workers, ``twin_days`` keeps each site's
day for the shadow twin and ``shadow_metrics`` compares it in the background for ``/metrics``,
``server`` serves the page (``static/``), its JSON and those metrics.
"""

from ops.model import OpsModel
from ops.server import OpsPage, OpsSettings, make_app, serve

__all__ = ["OpsModel", "OpsPage", "OpsSettings", "make_app", "serve"]
