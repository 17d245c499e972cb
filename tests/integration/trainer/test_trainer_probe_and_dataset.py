"""Probes (--max-iterations, --probe-phases) and the built-in offline data set."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from paramount_trainer.timing import WINDOW_MIN_STEPS

pytestmark = pytest.mark.slow


def test_probe_phases_time_both_phases(tmp_path, dataset_dir, run_inprocess, records, schema_validator):
    out = tmp_path / "o"
    # the tiny preset's warm-up is 10 steps: the probe still gets adversarial steps right after 2 warm-up ones
    rc = run_inprocess(["--data", dataset_dir, "--output-dir", out, "--node-name", "p",
                        "--probe-phases", "warmup:2,adversarial:3", "--probe-window", "0.2"])
    assert rc == 0
    recs = records(out, "p")
    assert all(not list(schema_validator.iter_errors(r)) for r in recs)
    assert [r["event"] for r in recs] == ["start", "init"] + ["iteration"] * 5 + ["end"]
    its = [r for r in recs if r["event"] == "iteration"]
    assert [r["phase"] for r in its] == ["warmup"] * 2 + ["adversarial"] * 3
    assert all("loss_d" in r for r in its[2:]) and all("loss_d" not in r for r in its[:2])
    # the compute-only window follows the first step of each phase: at least WINDOW_MIN_STEPS steps of it
    assert [len(r.get("window_seconds", [])) >= WINDOW_MIN_STEPS for r in its] == [True, False, True, False, False]
    init = recs[1]
    assert 0 <= init["wait_seconds"] <= init["seconds"]
    start, end = recs[0], recs[-1]
    assert start["probe"] is True and start["epochs"] == 2 and start["warmup_iterations"] == 10
    assert end["status"] == "stopped" and end["stop_reason"] == "max-iterations"
    assert not (out / "checkpoints").exists()  # a forced-phase probe is not progress: no checkpoint


def _end_digest(recs):
    (end,) = [r for r in recs if r["event"] == "end"]
    return end["param_digest"]


def test_probe_window_leaves_the_training_as_it_was(tmp_path, dataset_dir, run_inprocess, records):
    """Model, optimisers and random state are restored after each window: the same parameters at the end."""
    digests = []
    for window in ("0", "0.3"):
        out = tmp_path / window
        assert run_inprocess(["--data", dataset_dir, "--output-dir", out, "--node-name", "p",
                              "--probe-phases", "warmup:2,adversarial:2", "--probe-window", window]) == 0
        recs = records(out, "p")
        assert any("window_seconds" in r for r in recs) == (window != "0")
        digests.append(_end_digest(recs))
    assert digests[0] == digests[1]


def test_max_iterations_probe_checkpoints_at_stop(tmp_path, dataset_dir, run_inprocess, records):
    out = tmp_path / "o"
    assert run_inprocess(["--data", dataset_dir, "--output-dir", out, "--node-name", "p",
                          "--max-iterations", 3, "--instance-type", "c5.large"]) == 0
    recs = records(out, "p")
    assert [r["phase"] for r in recs if r["event"] == "iteration"] == ["warmup"] * 3
    assert recs[0]["instance_type"] == "c5.large"
    assert recs[-1]["status"] == "stopped"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt-000000003.pt"]


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_make_dataset_is_deterministic(tmp_path, run_python):
    from paramount_trainer.data import make_dataset

    make_dataset(str(tmp_path / "a"), n=12, size=64, seed=3)
    proc = run_python(["make-dataset", "--out", tmp_path / "b", "-n", 12, "--size", 64, "--seed", 3])
    assert proc.returncode == 0, proc.stderr
    make_dataset(str(tmp_path / "c"), n=12, size=64, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    files = sorted((tmp_path / "a").glob("*.png"))
    assert len(files) == 12
    for f in files:
        with Image.open(f) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
            assert np.asarray(img).std() > 1.0  # real content, not a flat colour


def test_make_dataset_default_size_and_sources(tmp_path):
    from paramount_trainer.data import make_dataset

    manifest = make_dataset(str(tmp_path / "d"), n=40, seed=0)
    assert manifest["size"] == 128 and len(manifest["images"]) == 40
    assert len({e["source"] for e in manifest["images"]}) >= 8  # crops from many different photos
    assert any(e["face"] for e in manifest["images"])
