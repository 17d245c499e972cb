"""The CPU trainer image (trainer/docker/Dockerfile.cpu) is built and run, with no registry and no internet.

* Its own ``dockerd`` (overlay2, own data-root, exec-root, socket and pidfile) runs inside a network namespace
  that has only a loopback interface: ``--network host`` during the build therefore means "loopback only".
* The base image is a Debian rootfs made by ``debootstrap`` (cached as a tarball under ``.cache/trainer-image``)
  and ``docker import``-ed.
* pip in the build reads no index (``WHEELS_ONLY=1``): only a folder of exactly the needed wheels (links into
  the machine's local wheel cache, plus the few wheels it lacks, fetched once from PyPI into ``.cache``) served
  by ``python -m http.server`` on 127.0.0.1 inside that namespace.
* The image then runs a 2-rank tiny job with ``--network none``; every log record is validated against the
  shipped schema, inside the image (``validate-log``) and here.

Everything started here is stopped by PID in a finalizer; the namespace, mounts and the data-root (GBs) go too.
"""
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TRAINER = REPO / "trainer"
DOCKERFILE = TRAINER / "docker" / "Dockerfile.cpu"
CACHE = REPO / ".cache" / "trainer-image"
REQUIRE_ENV = "PARAMOUNT_REQUIRE_ROOT_TESTS"

BASE_TAG = "paramount-test/debian-base:bookworm"
IMAGE_TAG = "paramount-test/trainer:cpu"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
               "bookworm", "{dir}", "http://deb.debian.org/debian"]
# the image's Python: Debian bookworm's 3.11, glibc 2.36 (pip does not widen an explicit --platform itself)
PLATFORMS = [arg for tag in [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)]
             + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"] for arg in ("--platform", tag)]
WHEEL_PORT = 8631  # the namespace is new and private: any port is free there
MIN_FREE_BYTES = 16 * 10**9  # the 6.2 GB torch layer exists twice while the build commits it
TOOLS = (("dockerd", "docker.io"), ("docker", "docker.io"), ("debootstrap", "debootstrap"), ("ip", "iproute2"),
         ("nsenter", "util-linux"), ("umount", "util-linux"), ("tar", "tar"))


def _pins(path):
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _dockerfile_args(path):
    """ARG NAME=default lines of a Dockerfile (defaults in double quotes or bare)."""
    found = re.findall(r'^ARG (\w+)=(?:"([^"]*)"|(\S*))$', Path(path).read_text(encoding="utf-8"), re.M)
    return {name: quoted or bare for name, quoted, bare in found}


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_pins_are_the_tested_ones(name):
    """The images install exactly the versions of requirements/trainer.txt (what every other test runs)."""
    args = _dockerfile_args(TRAINER / "docker" / name)
    pins = _pins(REPO / "requirements" / "trainer.txt")
    assert args["TORCH_VERSION"] == pins.pop("torch")
    assert args["TORCHVISION_VERSION"] == pins.pop("torchvision")
    assert sorted(args["EXTRA_REQUIREMENTS"].split()) == sorted(f"{n}=={v}" for n, v in pins.items())
    assert args["WHEELS_ONLY"] == ""  # real users read the documented indexes


def _missing_requirements():
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root (dockerd, network namespace, debootstrap)")
    for tool, package in TOOLS:
        if shutil.which(tool) is None:
            reasons.append(f"{tool} not found (install {package})")
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < MIN_FREE_BYTES:
        reasons.append(f"{free / 1e9:.1f} GB free in {tempfile.gettempdir()}, the build needs "
                       f"{MIN_FREE_BYTES / 1e9:.0f} GB")
    if platform.machine() != "x86_64":
        reasons.append(f"the pinned wheels are resolved for x86_64, not {platform.machine()}")
    return reasons


def _require():
    reasons = _missing_requirements()
    if reasons:
        message = "trainer image cannot be built here: " + "; ".join(reasons)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message + f" ({REQUIRE_ENV}=1 says these tests must run on this machine)")
        pytest.skip(message)


def _run(cmd, timeout, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], timeout=timeout, check=False, **kwargs)


def _check(cmd, timeout, **kwargs):
    proc = _run(cmd, timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{(proc.stdout or '')[-3000:]}\n" \
                                 f"{(proc.stderr or '')[-3000:]}"
    return proc


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid, grace):
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns whether it had to be killed."""
    if not _pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return False
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def _mounts_under(root, ignore_fstypes=()):
    """Mount points at or below `root`, deepest first (fields of /proc/self/mountinfo)."""
    root = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            fstype = fields[fields.index("-") + 1]
            if (point == root or point.startswith(root + "/")) and fstype not in ignore_fstypes:
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(root):
    """Unmount whatever is left below `root` (deepest first), then delete it without crossing into mounts."""
    for point in _mounts_under(root):
        _run(["umount", "-l", point], 30)
    if os.path.exists(root):
        _run(["rm", "-rf", "--one-file-system", root], 300)


# --- the base image: a debootstrap rootfs, cached as a tarball --------------------------------------------


def base_rootfs_tarball(work):
    """`.cache/trainer-image/debootstrap-<key>.tar`, made once per command line (about 45 s and 190 MB)."""
    key = hashlib.sha256(" ".join(DEBOOTSTRAP).encode()).hexdigest()[:12]
    tarball = CACHE / f"debootstrap-bookworm-minbase-{key}.tar"
    if tarball.exists():
        return tarball, False
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = Path(work) / "rootfs"
    try:
        _check([a.format(dir=rootfs) for a in DEBOOTSTRAP], 600)
        partial = tarball.with_suffix(f".tar.{os.getpid()}")
        _check(["tar", "-C", rootfs, "--numeric-owner", "-cf", partial, "."], 300)
        os.replace(partial, tarball)
    finally:
        _remove_tree(rootfs)
    return tarball, True


# --- the wheels: exactly what the image installs, from local files -----------------------------------------


def _image_requirements():
    args = _dockerfile_args(DOCKERFILE)
    return [f"torch=={args['TORCH_VERSION']}", f"torchvision=={args['TORCHVISION_VERSION']}",
            *args["EXTRA_REQUIREMENTS"].split(), "pip", "setuptools", "wheel"]


def _download(url, sha256, dest):
    partial = dest.with_name(dest.name + f".{os.getpid()}.part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:  # noqa: S310
        for chunk in iter(lambda: response.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    if sha256 and digest.hexdigest() != sha256:
        partial.unlink()
        raise AssertionError(f"{url}: sha256 {digest.hexdigest()} != {sha256}")
    os.replace(partial, dest)


def wheelhouse():
    """{file name: local path} of every wheel the image installs (Python 3.11, manylinux x86_64).

    pip resolves with this machine's configuration (its local wheel cache and indexes); a wheel that is only on
    PyPI is downloaded once into `.cache/trainer-image/wheels` (sha256 checked). The resolution is cached in a
    manifest keyed by the requirements, so a rerun reads no index at all."""
    reqs = _image_requirements()
    key = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
    manifest = CACHE / f"wheelhouse-{key}.json"
    if manifest.exists():
        files = json.loads(manifest.read_text(encoding="utf-8"))
        if all(Path(p).is_file() for p in files.values()):
            return files
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "wheels").mkdir(exist_ok=True)
    report = CACHE / f"report-{os.getpid()}.json"
    try:
        _check([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                "--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                *PLATFORMS, "--report", report, *reqs], 300)
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    finally:
        report.unlink(missing_ok=True)
    files = {}
    for item in installs:
        url = item["download_info"]["url"]
        name = urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name)
        if url.startswith("file://"):
            files[name] = urllib.parse.unquote(urllib.parse.urlparse(url).path)
            continue
        dest = CACHE / "wheels" / name
        if not dest.exists():
            hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
            _download(url, hashes.get("sha256"), dest)
        files[name] = str(dest)
    manifest.write_text(json.dumps(files, indent=1, sort_keys=True), encoding="utf-8")
    return files


# --- the engine: dockerd in a loopback-only network namespace ----------------------------------------------


class Engine:
    def __init__(self, root):
        self.root = Path(root)
        self.netns = f"pimg-{os.getpid()}"
        self.sock = self.root / "docker.sock"
        self.pidfile = self.root / "dockerd.pid"
        self.log = self.root / "dockerd.log"
        self.pids = []  # processes started here (in the order to stop them last-first)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_CONTEXT", None)
        self.storage_driver = None

    def nsenter(self):
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def start(self):
        _check(["ip", "netns", "add", self.netns], 30)
        self.has_netns = True
        _check(["ip", "-n", self.netns, "link", "set", "lo", "up"], 30)
        cmd = [*self.nsenter(), "dockerd", "--data-root", self.root / "data", "--exec-root", self.root / "exec",
               "--host", f"unix://{self.sock}", "--pidfile", self.pidfile, "--iptables=false",
               "--ip6tables=false", "--bridge=none", "--storage-driver", "overlay2"]
        with open(self.log, "wb") as log:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(proc.pid)  # nsenter execs dockerd: same PID
        self.dockerd = proc
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"dockerd exited {proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.docker(["version"], timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError("dockerd did not answer within 60 s:\n" + self.log.read_text()[-3000:])
            time.sleep(0.5)
        self.storage_driver = self.docker(["info", "-f", "{{.Driver}}"], timeout=30).stdout.strip()

    def docker(self, args, timeout=60, **kwargs):
        return _run(["docker", *args], timeout, env=self.env, **kwargs)

    def serve(self, folder):
        """python -m http.server on 127.0.0.1 inside the namespace; returns its URL once it listens."""
        with open(self.root / "http.log", "wb") as log:
            proc = subprocess.Popen(
                [*self.nsenter(), sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1",
                 "--directory", str(folder), str(WHEEL_PORT)],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.pids.append(proc.pid)
        self.http = proc
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..." once bound
        proc.stdout.close()
        assert "Serving HTTP" in line, (line, (self.root / "http.log").read_text())
        return f"http://127.0.0.1:{WHEEL_PORT}/"

    def stop(self):
        problems = []
        if self.sock.exists() and self.pids and _pid_alive(self.pids[0]):
            ids = self.docker(["ps", "-aq"], timeout=30).stdout.split()
            if ids:
                self.docker(["rm", "-f", *ids], timeout=120)
        for pid in reversed(self.pids):
            if _stop_pid(pid, grace=30):
                problems.append(f"pid {pid} needed SIGKILL")
        for proc in (getattr(self, "http", None), getattr(self, "dockerd", None)):
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"pid {proc.pid} not reaped")
        if getattr(self, "has_netns", False):
            # containerd and shims are dockerd's; anything still in the namespace is stopped by PID
            left = _run(["ip", "netns", "pids", self.netns], 30).stdout.split()
            for pid in map(int, left):
                problems.append(f"pid {pid} left in {self.netns}")
                _stop_pid(pid, grace=10)
            _run(["ip", "netns", "del", self.netns], 30)
        # dockerd leaves the bind mount of its network namespace (exec-root/netns/default, nsfs) behind by
        # design; anything else (overlay, bind mounts of containers) would be a leak
        leftover_mounts = _mounts_under(self.root, ignore_fstypes=("nsfs",))
        if leftover_mounts:
            problems.append(f"mounts left: {leftover_mounts}")
        _remove_tree(self.root)
        return problems


@pytest.fixture
def engine():
    _require()
    # short: containerd's socket lives below the exec root (unix socket paths are limited to 108 bytes)
    root = tempfile.mkdtemp(prefix="pimg-", dir=tempfile.gettempdir())
    eng = Engine(root)
    try:
        eng.start()
        yield eng
    finally:
        problems = eng.stop()
    assert not problems, problems
    assert not os.path.exists(root)


def _gb(n):
    return f"{n / 1e9:.2f} GB"


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cpu_image_builds_offline_and_runs_two_ranks(engine, tmp_path, dataset_dir, records, schema_validator):
    timings = {}
    assert engine.storage_driver == "overlay2", engine.storage_driver

    t0 = time.monotonic()
    tarball, made = base_rootfs_tarball(engine.root)
    timings["debootstrap" if made else "base tarball (cached)"] = time.monotonic() - t0
    t0 = time.monotonic()
    proc = engine.docker(["import", "--change", f"ENV PATH={PATH_ENV}", tarball, BASE_TAG], timeout=300)
    assert proc.returncode == 0, proc.stderr
    timings["docker import"] = time.monotonic() - t0

    t0 = time.monotonic()
    wheels = engine.root / "wheels"
    wheels.mkdir()
    for name, path in wheelhouse().items():
        (wheels / name).symlink_to(path)
    url = engine.serve(wheels)
    timings["wheelhouse"] = time.monotonic() - t0

    # --network host = the engine's namespace: loopback only. No index at all (WHEELS_ONLY=1); the index URLs
    # point at the wheel folder too, so even a pip that ignored PIP_NO_INDEX could reach nothing else.
    t0 = time.monotonic()
    build = engine.docker(
        ["build", "--network", "host", "-f", DOCKERFILE, "-t", IMAGE_TAG,
         "--build-arg", f"BASE_IMAGE={BASE_TAG}", "--build-arg", "WHEELS_ONLY=1",
         "--build-arg", f"WHEEL_FIND_LINKS={url}", "--build-arg", f"TORCH_INDEX_URL={url}",
         "--build-arg", f"PYPI_INDEX_URL={url}", TRAINER], timeout=600)
    timings["docker build"] = time.monotonic() - t0
    (tmp_path / "build.log").write_text(build.stdout + build.stderr, encoding="utf-8")
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-3000:]
    assert "Reading package lists" not in build.stdout  # the base had python3-venv: no apt-get ran
    assert "Looking in indexes" not in build.stdout  # pip read no index ...
    assert build.stdout.count(f"Looking in links: {url}") == 3  # ... only the wheel folder, in all 3 installs
    size = int(engine.docker(["image", "inspect", "-f", "{{.Size}}", IMAGE_TAG]).stdout.strip())

    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    run = engine.docker(
        ["run", "--name", "paramount-test-run", "--network", "none", "--hostname", "trainer",
         "--add-host", "trainer:127.0.0.1", "-e", "NPROC_PER_NODE=2", "-e", "PARAMOUNT_INSTANCE_TYPE=docker.cpu",
         "-v", f"{dataset_dir}:/data:ro", "-v", f"{out}:/out", IMAGE_TAG,
         "train", "--preset", "tiny", "--quiet", "--sample-interval", "0", "--print-interval", "1000",
         "--data", "/data", "--output-dir", "/out", "--node-name", "node-1", "--epochs", "1",
         "--warmup-batches", "2", "--holdout", "1", "--no-checkpoint"], timeout=300)
    timings["docker run (2 ranks)"] = time.monotonic() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    engine.docker(["rm", "paramount-test-run"])

    # validated inside the image (its own jsonschema and shipped schema) and here
    check = engine.docker(["run", "--rm", "--network", "none", "-v", f"{out}:/out:ro", IMAGE_TAG,
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
        assert start["torch"].split("+")[0] == _dockerfile_args(DOCKERFILE)["TORCH_VERSION"]
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
               **{k: f"{v:.1f} s" for k, v in timings.items()}}
    print("\ntrainer image:", json.dumps(summary))
