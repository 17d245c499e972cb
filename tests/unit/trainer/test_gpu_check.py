"""benchmarks/gpu_check.sh where it cannot run: no CUDA device (the test machines have no GPU; the check itself is
run by hand on a GPU machine, see the README), no such Python, a wrong argument. Each ends at once with status 2,
a message that says why, and nothing left behind."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _run(tmp_path, *args, **environment):
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    env.update(environment)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_without_a_cuda_device_it_says_so_and_checks_nothing(tmp_path):
    proc = _run(tmp_path, CUDA_VISIBLE_DEVICES="")  # no GPU visible even on a machine that has one
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "gpu_check: no CUDA device" in proc.stderr
    assert "this check needs an NVIDIA GPU, nothing was checked" in proc.stderr
    assert "== training" not in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no work folder made


def test_without_that_python_it_says_so(tmp_path):
    proc = _run(tmp_path, PYTHON=str(tmp_path / "no-such-python"))
    assert proc.returncode == 2
    assert "gpu_check: no Python at" in proc.stderr


def test_an_unknown_argument_is_refused(tmp_path):
    proc = _run(tmp_path, "--fast")
    assert proc.returncode == 2
    assert "unknown argument --fast" in proc.stderr
