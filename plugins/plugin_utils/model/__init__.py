# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The model stage of the optimizer: ``paramount_model`` is its entry (``ScalingModel``); ``fitting`` holds the
primitives of its scaling fit."""
