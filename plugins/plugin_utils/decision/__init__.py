# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The decision stage of the optimizer, split by concern:

- ``billing``: the billing rule of a type and the conversion of billed node-seconds into money (shared by the plan,
  the cost ledger and the autoscale timeline);
- ``candidates``: pricing every (instance_type, nodes), the constraints, ranking, the Pareto front, the choice and
  its runner-up;
- ``inventory``: the desired-state inventory contract (slot names, parse, keep/start/stop, the document written).
"""
