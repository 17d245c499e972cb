"""The CPU trainer image (trainer/docker/Dockerfile.cpu) is built and run, with no registry and no internet.

The build is the session fixture ``trainer_image`` (tests/integration/trainer_image_fixture.py): its own
``dockerd`` in a loopback-only network namespace, a ``debootstrap`` base image, pip fed only from a folder of
local wheels, then ``docker save`` into ``.cache/trainer-image`` under a hash of the build's inputs. A session
builds it at most once, and not at all while the archive of the same inputs is cached (its build log is kept
next to it, and checked here; ``PARAMOUNT_REBUILD_TRAINER_IMAGE=1`` rebuilds).

This test loads the archive into a fresh engine (again loopback-only, its own data root), runs a 2-rank tiny
job with ``--network none`` and validates every log record against the shipped schema, inside the image
(``validate-log``) and here. Everything started here is stopped by PID; the namespace, mounts and the data
root (GBs) go too.
"""
import json
import time
from pathlib import Path

import pytest

from tests.integration.trainer_image_fixture import (  # noqa: F401  pylint: disable=unused-import
    DOCKERFILE, REPO, TRAINER, dockerfile_args, running_engine, wheelhouse)  # wheelhouse: imported from here elsewhere


def _pins(path):
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_pins_are_the_tested_ones(name):
    """The images install exactly the versions of requirements/trainer.txt (what every other test runs)."""
    args = dockerfile_args(TRAINER / "docker" / name)
    pins = _pins(REPO / "requirements" / "trainer.txt")
    assert args["TORCH_VERSION"] == pins.pop("torch")
    assert args["TORCHVISION_VERSION"] == pins.pop("torchvision")
    assert sorted(args["EXTRA_REQUIREMENTS"].split()) == sorted(f"{n}=={v}" for n, v in pins.items())
    assert args["WHEELS_ONLY"] == ""  # real users read the documented indexes


@pytest.fixture
def engine(trainer_image):  # the image first: its build has an engine of its own, stopped before this one starts
    assert trainer_image.archive.exists()
    with running_engine() as eng:
        yield eng


def _gb(n):
    return f"{n / 1e9:.2f} GB"


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cpu_image_builds_offline_and_runs_two_ranks(trainer_image, engine, tmp_path, dataset_dir, records,
                                                     schema_validator):
    timings = dict(trainer_image.record["timings"])
    assert engine.storage_driver == "overlay2", engine.storage_driver

    # what the build did (this session's build, or the one that made the cached archive of the same inputs)
    log = trainer_image.build_log
    url = trainer_image.record["build_url"]
    assert "Successfully tagged " + trainer_image.tag in log, log[-3000:]
    assert "Reading package lists" not in log  # the base had python3-venv: no apt-get ran
    assert "Looking in indexes" not in log  # pip read no index ...
    assert log.count(f"Looking in links: {url}") == 3  # ... only the wheel folder, in all 3 installs

    t0 = time.monotonic()
    load = engine.docker(["load", "-i", trainer_image.archive], timeout=600)
    timings["docker load"] = time.monotonic() - t0
    assert load.returncode == 0, load.stdout + load.stderr
    size = int(engine.docker(["image", "inspect", "-f", "{{.Size}}", trainer_image.tag]).stdout.strip())
    assert size == trainer_image.record["image_size"]

    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    run = engine.docker(
        ["run", "--name", "paramount-test-run", "--network", "none", "--hostname", "trainer",
         "--add-host", "trainer:127.0.0.1", "-e", "NPROC_PER_NODE=2", "-e", "PARAMOUNT_INSTANCE_TYPE=docker.cpu",
         "-v", f"{dataset_dir}:/data:ro", "-v", f"{out}:/out", trainer_image.tag,
         "train", "--preset", "tiny", "--quiet", "--sample-interval", "0", "--print-interval", "1000",
         "--data", "/data", "--output-dir", "/out", "--node-name", "node-1", "--epochs", "1",
         "--warmup-batches", "2", "--holdout", "1", "--no-checkpoint"], timeout=300)
    timings["docker run (2 ranks)"] = time.monotonic() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    engine.docker(["rm", "paramount-test-run"])

    # validated inside the image (its own jsonschema and shipped schema) and here
    check = engine.docker(["run", "--rm", "--network", "none", "-v", f"{out}:/out:ro", trainer_image.tag,
                           "validate-log", "/out/node-1.log"], timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    recs = records(out, "node-1")
    for rec in recs:
        errors = [e.message for e in schema_validator.iter_errors(rec)]
        assert not errors, (rec, errors)
    assert {r["rank"] for r in recs} == {0, 1}
    starts = [r for r in recs if r["event"] == "start"]
    assert len(starts) == 2
    for start in starts:
        assert start["world_size"] == 2 and start["device"] == "cpu" and start["backend"] == "gloo"
        assert start["instance_type"] == "docker.cpu"
        assert start["torch"].split("+")[0] == dockerfile_args(DOCKERFILE)["TORCH_VERSION"]
    # 31 training images, 2 ranks x batch 4: 4 steps in the one epoch, 2 of them warm-up
    for rank in (0, 1):
        steps = [r for r in recs if r["event"] == "iteration" and r["rank"] == rank]
        assert [r["phase"] for r in steps] == ["warmup"] * 2 + ["adversarial"] * 2
    ends = [r for r in recs if r["event"] == "end"]
    assert sorted(r["rank"] for r in ends) == [0, 1]
    assert {r["status"] for r in ends} == {"completed"}
    assert ends[0]["param_digest"] == ends[1]["param_digest"]
    assert (out / "generator.pt").exists() and (out / "node-1.out").exists()

    summary = {"storage_driver": engine.storage_driver, "image_size": _gb(size),
               "archive": f"{trainer_image.archive.name} ({_gb(trainer_image.record['archive_size'])}, "
                          f"{'built in this session' if trainer_image.built_now else 'cached'})",
               **{k: f"{v:.1f} s" for k, v in timings.items()}}
    print("\ntrainer image:", json.dumps(summary))
