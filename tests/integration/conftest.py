"""Fixtures for tests on the simulated cloud (real SSH hosts in network namespaces, moto as EC2)."""
import contextlib
import os

import pytest

import simcloud  # the checkout's tool (simcloud/ at the repository root)

from .trainer_image_fixture import trainer_image, trainer_image_archive  # noqa: F401  pylint: disable=unused-import
from .wheelhouse_fixture import trainer_wheelhouse  # noqa: F401  pylint: disable=unused-import

REQUIRE_ENV = "PARAMOUNT_REQUIRE_ROOT_TESTS"


def require_simcloud():
    """Skip with the reason when this machine cannot host a sim cloud; fail instead where it must (CI as root)."""
    reasons = simcloud.missing_requirements()
    if reasons:
        message = "simulated cloud unavailable: " + "; ".join(reasons)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message + " (%s=1 says these tests must run on this machine)" % REQUIRE_ENV)
        pytest.skip(message)


def start_cloud(state_dir, **options):
    require_simcloud()
    cloud = simcloud.SimCloud(state_dir, **options)
    cloud.up()
    return cloud


@contextlib.contextmanager
def running_cloud(state_dir, **options):
    """A simulated cloud up for the block; torn down (and checked empty) even after failures."""
    cloud = start_cloud(state_dir, **options)
    try:
        yield cloud
    finally:
        cloud.down()
    assert cloud.leftovers() == [], "the simulated cloud left things behind"


@pytest.fixture(scope="session")
def sim_cloud(tmp_path_factory):
    """One simulated cloud for the session."""
    with running_cloud(tmp_path_factory.mktemp("simcloud")) as cloud:
        yield cloud
