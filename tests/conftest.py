"""Make the repository importable as the collection ``ansible_collections.paramount.cluster``.

The repository root is the collection root. Unit tests import plugin code the way Ansible does,
through the ``ansible_collections`` namespace, so ``.build/collections`` holds a symlink
``ansible_collections/paramount/cluster -> <repo>`` and goes first on ``sys.path``.
The trainer package (``trainer/paramount_trainer``) is importable as ``paramount_trainer``.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO / ".build" / "collections"


def _link_collection():
    link = COLLECTIONS_ROOT / "ansible_collections" / "paramount" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        try:
            os.symlink(REPO, link)
        except FileExistsError:  # another xdist worker or process made it first
            pass
    # the repository root: the checkout's tools (simcloud) and the tests' own helpers (tests.playbook_env, tests.loggen)
    for path in (str(REPO), str(REPO / "trainer"), str(COLLECTIONS_ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


_link_collection()


def _import_torch_dynamo_before_ansible():
    """Import torch._dynamo before any test imports Ansible.

    On Python < 3.12 ansible-core 2.19 replaces ``sys.intern`` by a callable object (it rejects ``str``
    subclasses there). torch._dynamo, which torch imports lazily (torch.load, the optimisers), registers a
    substitute for ``sys.intern`` and raises ``TypeError: substitute_in_graph expects a function`` if it meets
    Ansible's object. Nothing in the product runs the trainer and Ansible in one process; this test session
    does, so dynamo goes first.
    """
    try:
        import torch._dynamo  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:  # a controller-only environment without torch: the trainer tests skip or fail on their own
        pass


_import_torch_dynamo_before_ansible()


# --- Running the suite on two workers (scripts/run-tests: pytest -n 2 --dist loadgroup) -----------------------
# Most of the suite's wall time is spent waiting on emulated nodes that may use only 15-60% of a CPU, so two
# workers roughly halve it on a 2-core machine. Each worker has its own session fixtures (its own simulated cloud:
# clouds never collide, see simcloud/cloud.py). Tests that share something outside their worker form one work unit,
# run in order on one worker:
#   loopback: the local backend and the clap double start torchrun on this machine's 127.0.0.1:29400;
#   engines:  the trainer image and the wheel folder are built once into .cache/trainer-image, and the scenarios
#             that use them start dockerd;
#   autoscale: the two re-planning scenarios, kept together so the other worker takes everything else meanwhile;
#   real_clap: the tests against the real CLAP share one CLAP venv and one simulated cloud (session fixtures).
# Slowest work goes first (longest-processing-time-first), so neither worker is left with a long test at the end.
XDIST_GROUPS = (  # (group, what a test's node id starts with or contains), in the order they are handed out
    ("autoscale", ("tests/integration/test_autoscale.py",)),
    ("engines", ("tests/integration/trainer/test_image.py", "test_molecule_scenario[container_probe]",
                 "test_molecule_scenario[trainer_venv]", "test_molecule_scenario[docker_engine]")),
    ("real_clap", ("tests/integration/clap/test_real_clap",)),
    ("loopback", ("tests/integration/test_quickstart.py", "tests/integration/clap/test_optimize_clap.py",
                  "tests/integration/clap/", "tests/integration/test_sweep.py", "tests/integration/test_bad_input.py")),
    (None, ("test_molecule_scenario[seed_train]", "test_molecule_scenario[seed_scaling]",
            "test_molecule_scenario[faults]", "test_molecule_scenario[")),
    (None, ("tests/integration/",)),
)


def xdist_group(nodeid):
    """(rank, group) of a test: rank orders the hand-out (a group's tests in the order of its patterns, its
    slowest first), group (or None) names the tests that must share a worker."""
    for rank, (group, patterns) in enumerate(XDIST_GROUPS):
        for position, pattern in enumerate(patterns):
            if nodeid.startswith(pattern) or pattern in nodeid:
                return (rank, position), group
    return (len(XDIST_GROUPS), 0), None


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    """Slowest first; every worker collects in this order and the scheduler hands units out in it."""
    ranked = sorted(enumerate(items), key=lambda pair: (xdist_group(pair[1].nodeid)[0], pair[0]))
    items[:] = [item for _index, item in ranked]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist; without it installed, nothing to schedule
def pytest_xdist_make_scheduler(config, log):
    """Work units by XDIST_GROUPS (xdist's own loadgroup marks rename node ids, which pytest 9 ignores)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_group(nodeid)[1] or nodeid

    return GroupScheduling(config, log)


# --- The ansible-playbook environment and the roles' specs (tests/playbook_env.py, tests/role_specs.py) -------------
@pytest.fixture
def collections_path(tmp_path):
    """A temporary collections path holding only this collection (the bundled ones come from site-packages)."""
    from tests.playbook_env import link_collection  # pylint: disable=import-outside-toplevel

    return link_collection(tmp_path / "collections")


EMULATED_TYPE_DEFAULTS = ("paramount_local_cpu_shares", "paramount_sim_cpu_shares", "paramount_sim_instance_types")


@pytest.fixture(scope="session")
def provision_defaults(tmp_path_factory):
    """The provision role's defaults, its emulated types (EMULATED_TYPE_DEFAULTS) as Ansible renders them: the
    catalog's, through the collection's lookup paramount.cluster.emulated_cpu_shares."""
    from tests.playbook_env import BUILD_COLLECTIONS  # pylint: disable=import-outside-toplevel
    from tests.role_specs import rendered_defaults, role_defaults  # pylint: disable=import-outside-toplevel

    work = tmp_path_factory.mktemp("provision-defaults")
    return {**role_defaults("provision"), **rendered_defaults("provision", EMULATED_TYPE_DEFAULTS, BUILD_COLLECTIONS, work)}
