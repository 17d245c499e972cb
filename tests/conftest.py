"""Make the repository importable as the collection ``ansible_collections.paramount.cluster``.

The repository root is the collection root. Unit tests import plugin code the way Ansible does,
through the ``ansible_collections`` namespace, so ``.build/collections`` holds a symlink
``ansible_collections/paramount/cluster -> <repo>`` and goes first on ``sys.path``.
The trainer package (``trainer/paramount_trainer``) is importable as ``paramount_trainer``.
"""
import os
import sys
from pathlib import Path

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
    for path in (str(REPO / "trainer"), str(COLLECTIONS_ROOT)):
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
