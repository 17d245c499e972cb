# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Action plugin paramount.cluster.optimize: runs on the controller only.

Thin wrapper: validate the options with the argument spec, resolve relative paths against the
play's base directory, and delegate to ``plugin_utils.paramount_plan.optimize``. Documentation
lives in ``plugins/modules/optimize.py``.
"""

from __future__ import annotations

import traceback

from ansible.plugins.action import ActionBase

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import ARGUMENT_SPEC
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

PATH_OPTIONS = ("results_dir", "catalog", "output_dir")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for name in PATH_OPTIONS:
            if args.get(name):
                args[name] = self._loader.path_dwim(args[name])
        inv = args.get("current_inventory")
        if isinstance(inv, str) and inv:
            args["current_inventory"] = self._loader.path_dwim(inv)
        try:
            from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize
        except ImportError as exc:
            result.update(failed=True, msg="paramount.cluster.optimize needs numpy, scipy, matplotlib and PyYAML "
                                           "on the controller (pip install numpy scipy matplotlib pyyaml): %s" % exc)
            return result
        try:
            result.update(optimize(args, check_mode=bool(self._task.check_mode)))
        except ParamountError as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # never a bare traceback for the user; details under -vvv
            result.update(failed=True, msg="paramount.cluster.optimize internal error: %s: %s"
                                           % (type(exc).__name__, exc),
                          exception=traceback.format_exc())
        return result
