# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The clap stage of the optimizer: the plan's chosen cluster as a CLAP cluster file (``cluster``), the instance
template ids the collection's CLAP folder defines and the check of a cluster file against CLAP's schema. The clapp
output parsers of the provision role's clap backend are filters (plugins/filter/paramount_clap.py)."""
