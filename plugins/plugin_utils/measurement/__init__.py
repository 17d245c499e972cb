# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The measurement stage of the optimizer: the nodes' paramount-iteration logs in, per-configuration estimates
of seconds per iteration out (``estimates.measure`` is its entry; callers import each name from its module).

Data path, one module per step:

- ``records``: find and read the JSON-lines node logs, each record validated against the trainer's shipped
  JSON Schema (log contract v1); bad lines are dropped with their line number (stdlib only: the ledger, run by
  path, reads logs with it too).
- ``runs``: the job, and each run and attempt as the records describe them (types, status, steps).
- ``rating``: per attempt and training phase, each type's step time, its communication term and the warm-up
  cut or drift.
- ``statistics``: robust mean with a confidence interval, warm-up cut and drift fit.
- ``estimates``: ``measure()``, pooling the attempts into a ``Measurement`` per (instance_type, nodes).
"""
