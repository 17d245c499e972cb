# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The model stage of the optimizer: ``scaling`` is its entry (``ScalingModel``: predictions with intervals for
every candidate); ``fitting`` holds the primitives of its scaling fit."""
