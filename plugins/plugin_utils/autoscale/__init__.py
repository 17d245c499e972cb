# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Re-plan while training (``paramount.cluster.autoscale``), split by concern along the data path:

* ``live``: the live measurement (formations of the elastic group, progress, lost progress, timeline rows), read
  with the planner's log reader;
* ``replan``: the planner called in-process on the live measurement (``paramount_plan.optimize``, the optimize
  plugin's code), the catalog's prices and the desired-state inventory through the planner's functions;
* ``policy``: ``decide()``, the guardrails and the cooldown: pure, unit-tested without a cluster;
* ``actions``: the cluster as the collection's playbooks see it (observe, join, leave, provision) and the
  rendezvous store;
* ``settings``: the one settings document ``playbooks/autoscale.yml`` writes, checked with errors naming the setting;
* ``controller``: the control loop, its report, and the entry point
  (``python -m ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.controller SETTINGS``).
"""
