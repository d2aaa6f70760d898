"""Onboarding a site: from its layout and history to a gated policy bundle, in one command.

``chuteflow site onboard`` (``onboarding.pipeline``) splits the history in time, fits the
day-type groups, trains and picks candidates, evaluates every suite on the held-out days and
writes a bundle whose report says whether the learned policy passed the release gate
(``onboarding.gate``). Its fan-out is ``evaluation.fanout`` (serial or Ray); several sites
share one fan-out in one run (``onboarding.fleet``). The history is checked and split as
``chuteflow site check`` does it (``onboarding.history`` on ``twin.coverage`` and
``twin.split``); ``onboarding.timing`` tabulates where a run's time went (``bench onboard``).
"""
