"""``devsecmw gameday``: prove, against a running service, that each attack category arrives.

- :mod:`.suite`: the labeled, harmless requests (every attack category of SPEC.md, a
  scanner burst, 404 and auth-failure bursts), each tagged with the run id.
- :mod:`.receiver`: a built-in OTLP/HTTP receiver the service (or its collector) exports to.
- :mod:`.records`: span records, the JSON-lines form saved with ``--save`` and read by
  ``devsecmw report``.
- :mod:`.scorecard`: sent, seen, right type, time to appear, blocked, per category.
- :mod:`.run`: target checks (loopback or ``--allow-host`` only), bounded sending, waiting.
- :mod:`.command`: the ``gameday`` and ``report`` subcommands.

Nothing is imported here: ``devsecmw --help`` stays as fast as before.
"""
