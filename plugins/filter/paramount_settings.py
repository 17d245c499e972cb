# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Filter paramount.cluster.plan_settings_problems: what is wrong with a play's objective and plan options, checked
by the optimize plugin's own argument spec and the Objective enum (``paramount_args.plan_settings_problems``), so
the provision role fails on them before anything starts. The documentation is the sidecar
``plan_settings_problems.yml``."""

from __future__ import annotations

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import plan_settings_problems


def plan_settings_problems_text(objective=None, options=None):
    """The problems as one message ('' when there are none)."""
    return " ".join(plan_settings_problems(objective, options))


class FilterModule:
    """paramount.cluster's plan settings filter."""

    def filters(self):
        return {"plan_settings_problems": plan_settings_problems_text}
