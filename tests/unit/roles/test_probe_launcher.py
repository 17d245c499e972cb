"""roles/probe/files/paramount_launch.py in container mode, with a stand-in `docker` client (a script that
records its arguments): whatever ends the command, the launcher removes the container by name, before it
removes its pidfile; natively it runs no docker at all."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).resolve().parents[3] / "roles" / "probe" / "files" / "paramount_launch.py"


@pytest.fixture(name="fake_docker")
def _fake_docker(tmp_path):
    """A `docker` that appends its arguments and whether the pidfile still existed to calls.txt."""
    script = tmp_path / "docker"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys
        with open({str(tmp_path / "calls.txt")!r}, "a") as out:
            out.write(" ".join(sys.argv[1:]) + " pidfile=" + str(os.path.exists({str(tmp_path / "trainer.pid")!r})) + "\\n")
        """))
    script.chmod(0o755)
    return script


def _launch(tmp_path, fake_docker, command, *options):
    argv = [sys.executable, str(LAUNCHER), "--pidfile", str(tmp_path / "trainer.pid"), *options, "--", *command]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _calls(tmp_path):
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


CONTAINER = ["--container-name", "paramount-run-node", "--docker-host", "unix:///srv/docker.sock"]


def test_the_container_is_removed_after_the_command_ends(tmp_path, fake_docker):
    proc = _launch(tmp_path, fake_docker, [sys.executable, "-c", "import sys; sys.exit(3)"], "--max-seconds", "60",
                   *CONTAINER, "--docker-cli", str(fake_docker))
    assert proc.wait(timeout=60) == 3  # the command's exit status
    assert _calls(tmp_path) == ["--host unix:///srv/docker.sock rm -f paramount-run-node pidfile=True"]
    assert not (tmp_path / "trainer.pid").exists()


def test_the_container_is_removed_after_the_time_limit_and_the_grace_kill(tmp_path, fake_docker):
    # a command that ignores SIGTERM (a `docker run` whose container does not stop): SIGKILL after the grace period
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    t0 = time.monotonic()
    proc = _launch(tmp_path, fake_docker, stubborn, "--max-seconds", "1", "--grace-seconds", "1", *CONTAINER,
                   "--docker-cli", str(fake_docker))
    assert proc.wait(timeout=60) == 128 + signal.SIGKILL
    assert time.monotonic() - t0 < 30
    assert "time limit of 1 s reached" in proc.stderr.read()
    assert _calls(tmp_path) == ["--host unix:///srv/docker.sock rm -f paramount-run-node pidfile=True"]


def test_a_sigterm_to_the_launcher_reaches_the_command_and_the_container_is_removed(tmp_path, fake_docker):
    marker = tmp_path / "got-sigterm"
    command = [sys.executable, "-c", textwrap.dedent(f"""\
        import signal, sys, time
        def stop(*_):
            open({str(marker)!r}, "w").close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        time.sleep(60)
        """)]
    proc = _launch(tmp_path, fake_docker, command, "--max-seconds", "60", *CONTAINER, "--docker-cli", str(fake_docker))
    deadline = time.monotonic() + 30
    while not (tmp_path / "trainer.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the command installs its handler
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert marker.exists()
    assert _calls(tmp_path) == ["--host unix:///srv/docker.sock rm -f paramount-run-node pidfile=True"]
    assert not (tmp_path / "trainer.pid").exists()


def test_natively_no_docker_runs(tmp_path, fake_docker):
    proc = _launch(tmp_path, fake_docker, [sys.executable, "-c", "pass"], "--max-seconds", "60",
                   "--docker-cli", str(fake_docker))
    assert proc.wait(timeout=60) == 0
    assert _calls(tmp_path) == []
    assert not (tmp_path / "trainer.pid").exists()
