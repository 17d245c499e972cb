"""Fixtures for the tests against the real CLAP (tests/clap_real): one CLAP venv and one simulated cloud per test
session (the real-CLAP tests share one xdist worker, group `real_clap` in tests/conftest.py), a fresh CLAP home per
test. They skip with the reason when CLAP's source is absent (a user's machine without ../shared/clap)."""
from __future__ import annotations

import pytest

from tests.clap_real import harness

from ..conftest import running_cloud


@pytest.fixture(scope="session")
def real_clap_python():
    """CLAP's venv (built by scripts/setup-clap-env if the test set-up did not already): its Python."""
    reason = harness.missing_clap()
    if reason:
        pytest.skip(reason)
    return harness.build_clap_env()


@pytest.fixture(scope="session")
def real_clap_cloud(real_clap_python, tmp_path_factory):  # pylint: disable=unused-argument,redefined-outer-name
    """A simulated cloud of the real-CLAP tests alone (their CLAP nodes are all its instances)."""
    # moto on port 80 of the cloud's controller namespace: boto 2 ignores the endpoint's port (harness.EC2_HOST)
    with running_cloud(tmp_path_factory.mktemp("clapcloud"), moto_port=harness.MOTO_PORT) as cloud:
        yield cloud


@pytest.fixture
def real_clapp(real_clap_cloud, real_clap_python, tmp_path):  # pylint: disable=redefined-outer-name
    """A ready real clapp with its own CLAP home; afterwards its nodes are removed from CLAP (the tests check that
    themselves) and no instance or host it launched may remain."""
    clap = harness.RealClap(real_clap_cloud, tmp_path, real_clap_python)
    yield clap
    print("clapp calls: " + "; ".join("%s: %.0f s" % call for call in clap.timings))
    left = clap.nodes()
    clap.unregister(sorted(left))
    # what the test launched, and what CLAP started and a failed test left (its nodes' instances)
    launched = sorted(set(clap.launched) | {n["cloud_instance_id"] for n in left.values() if n.get("cloud_instance_id")})
    harness.terminate_hosts(real_clap_cloud, launched)
    running = {i for i, v in harness.moto_instances(real_clap_cloud).items() if v["state"] != "terminated"}
    hosts = {h["instance_id"] for h in real_clap_cloud.hosts()}
    assert not running & set(launched) and not hosts & set(launched), "instances or hosts left: %s" % sorted(running | hosts)
