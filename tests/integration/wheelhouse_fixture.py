"""A folder of exactly the wheels the trainer needs, for scenarios that install it offline (pip --no-index).

The wheels come from ``wheelhouse()`` (tests/integration/trainer_image_fixture.py, also importable from
tests/integration/trainer/test_image.py): the pins of requirements/trainer.txt resolved once from this machine's
pip cache and PyPI, then cached under .cache/trainer-image. The folder holds symlinks to them, so it costs no
disk; hosts of the simulated cloud share this machine's root filesystem and read it directly.
"""
import os
import platform
import subprocess

import pytest

from .trainer_image_fixture import wheelhouse

REQUIRE_ENV = "PARAMOUNT_REQUIRE_ROOT_TESTS"
# The wheels are resolved for CPython 3.11 on manylinux x86_64: the Python that makes the node's venv must match.
NODE_PYTHON = "/usr/bin/python3"


def _node_python_version():
    try:
        proc = subprocess.run([NODE_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def _skip_or_fail(message):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 says these tests must run on this machine)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def trainer_wheelhouse(tmp_path_factory):
    """{"PARAMOUNT_TEST_WHEELHOUSE": folder of symlinks to every wheel of the trainer's pinned requirements}."""
    if platform.machine() != "x86_64":
        _skip_or_fail(f"the trainer's wheels are resolved for x86_64, not {platform.machine()}")
    if _node_python_version() != "(3, 11)":
        _skip_or_fail(f"{NODE_PYTHON} is not Python 3.11 (the wheels are resolved for cp311)")
    files = wheelhouse()
    folder = tmp_path_factory.mktemp("wheelhouse")
    for name, path in sorted(files.items()):
        (folder / name).symlink_to(os.path.realpath(path))
    names = sorted(files)
    assert any(n.startswith("torch-") for n in names) and any(n.startswith("torchvision-") for n in names), names
    return {"PARAMOUNT_TEST_WHEELHOUSE": str(folder)}
