# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""``python simcloud ...`` (this folder run by path) and ``python -m simcloud ...``."""

import os
import sys

if not __package__:
    # Run by path: Python put this folder first on sys.path, where its module names could shadow others;
    # the folder above it makes `simcloud` the package.
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    sys.path.insert(0, os.path.dirname(_HERE))

from simcloud.cli import main  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(main())
