# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The outputs stage of the optimizer: the files a plan writes (``files``: plan.json, the desired-state inventory,
the CLAP cluster file, each written only when its content changes) and the human-readable report with its plots
(``report``: report.md, time against cost, measured against predicted)."""
