"""The CPU trainer image (trainer/docker/Dockerfile.cpu), built at most once: a `docker save` archive in .cache.

Building the image takes minutes and about 6.2 GB (PyPI's torch is the CUDA build), so a pytest session builds it
at most once, and not at all while an archive of the same inputs is in ``.cache/trainer-image``:

* ``trainer_image`` (session fixture): an ``ImageArchive`` (archive path, tag, key, the build's log and timings).
  The archive is named by a hash of everything the build reads: the files of trainer/ (the build context, with
  the Dockerfile and the entrypoint), the wheels pip installs (file names: name and version), the debootstrap
  command of the base image and the build arguments. ``PARAMOUNT_REBUILD_TRAINER_IMAGE=1`` rebuilds anyway.
* ``trainer_image_archive`` (session fixture): the environment variables a molecule scenario gets
  (``PARAMOUNT_TRAINER_IMAGE_ARCHIVE``, ``PARAMOUNT_TRAINER_IMAGE``); a scenario names it in its
  ``requires-fixtures`` file (tests/integration/test_molecule.py).

The build itself (tests/integration/trainer/test_image.py checks what it did):

* Its own ``dockerd`` (overlay2, own data-root, exec-root, socket and pidfile) runs inside a network namespace
  that has only a loopback interface: ``--network host`` during the build therefore means "loopback only".
* The base image is a Debian rootfs made by ``debootstrap`` (cached as a tarball under ``.cache/trainer-image``)
  and ``docker import``-ed.
* pip in the build reads no index (``WHEELS_ONLY=1``): only a folder of exactly the needed wheels (links into
  the machine's local wheel cache, plus the few wheels it lacks, fetched once from PyPI into ``.cache``) served
  by ``python -m http.server`` on 127.0.0.1 inside that namespace.
* ``docker save`` writes the archive next to its build log and a JSON record; older archives are removed (each is
  GBs). Then the engine is stopped by PID, its namespace deleted and its data root (GBs) removed.

A build is bounded (every command has a time limit) and does not count against the pytest-timeout of the test
that first asks for the image: the molecule scenario that needs it would otherwise have the build's minutes on
top of its own (``_timeout_paused``).
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
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

REPO = Path(__file__).resolve().parents[2]
TRAINER = REPO / "trainer"
DOCKERFILE = TRAINER / "docker" / "Dockerfile.cpu"
CACHE = REPO / ".cache" / "trainer-image"
REQUIRE_ENV = "PARAMOUNT_REQUIRE_ROOT_TESTS"
REBUILD_ENV = "PARAMOUNT_REBUILD_TRAINER_IMAGE"

BASE_TAG = "paramount-test/debian-base:bookworm"
IMAGE_TAG = "paramount-test/trainer:cpu"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
               "bookworm", "{dir}", "http://deb.debian.org/debian"]
# the image's Python: Debian bookworm's 3.11, glibc 2.36 (pip does not widen an explicit --platform itself)
PLATFORMS = [arg for tag in [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)]
             + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"] for arg in ("--platform", tag)]
WHEEL_PORT = 8631  # the namespace is new and private: any port is free there
BUILD_FREE_BYTES = 16 * 10**9  # the 6.2 GB torch layer exists twice while the build commits it, then the archive
LOAD_FREE_BYTES = 8 * 10**9  # an engine that loads the archive holds one more copy
TOOLS = (("dockerd", "docker.io"), ("docker", "docker.io"), ("debootstrap", "debootstrap"), ("ip", "iproute2"),
         ("nsenter", "util-linux"), ("umount", "util-linux"), ("tar", "tar"))
# what the archive's name hashes besides the files: bump to rebuild every cached archive
ARCHIVE_FORMAT = "1"
ARCHIVE_PREFIX = "paramount-trainer-cpu-"


def dockerfile_args(path):
    """ARG NAME=default lines of a Dockerfile (defaults in double quotes or bare)."""
    found = re.findall(r'^ARG (\w+)=(?:"([^"]*)"|(\S*))$', Path(path).read_text(encoding="utf-8"), re.M)
    return {name: quoted or bare for name, quoted, bare in found}


def missing_requirements(free_bytes=BUILD_FREE_BYTES):
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root (dockerd, network namespace, debootstrap)")
    for tool, package in TOOLS:
        if shutil.which(tool) is None:
            reasons.append(f"{tool} not found (install {package})")
    for folder in sorted({tempfile.gettempdir(), str(REPO)}):
        free = shutil.disk_usage(folder).free
        if free < free_bytes:
            reasons.append(f"{free / 1e9:.1f} GB free in {folder}, the trainer image needs {free_bytes / 1e9:.0f} GB")
    if platform.machine() != "x86_64":
        reasons.append(f"the pinned wheels are resolved for x86_64, not {platform.machine()}")
    return reasons


def require(free_bytes=BUILD_FREE_BYTES):
    """Skip with the reasons this machine cannot build or run the image (fail instead where it must)."""
    reasons = missing_requirements(free_bytes)
    if reasons:
        message = "trainer image cannot be built here: " + "; ".join(reasons)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message + f" ({REQUIRE_ENV}=1 says these tests must run on this machine)")
        pytest.skip(message)


def run(cmd, timeout, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], timeout=timeout, check=False, **kwargs)


def check(cmd, timeout, **kwargs):
    proc = run(cmd, timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{(proc.stdout or '')[-3000:]}\n" \
                                 f"{(proc.stderr or '')[-3000:]}"
    return proc


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, grace):
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns whether it had to be killed."""
    if not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def mounts_under(root, ignore_fstypes=()):
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


def remove_tree(root):
    """Unmount whatever is left below `root` (deepest first), then delete it without crossing into mounts."""
    for point in mounts_under(root):
        run(["umount", "-l", point], 30)
    if os.path.exists(root):
        run(["rm", "-rf", "--one-file-system", root], 300)


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
        check([a.format(dir=rootfs) for a in DEBOOTSTRAP], 600)
        partial = tarball.with_suffix(f".tar.{os.getpid()}")
        check(["tar", "-C", rootfs, "--numeric-owner", "-cf", partial, "."], 300)
        os.replace(partial, tarball)
    finally:
        remove_tree(rootfs)
    return tarball, True


# --- the wheels: exactly what the image installs, from local files -----------------------------------------


def image_requirements():
    args = dockerfile_args(DOCKERFILE)
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
    reqs = image_requirements()
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
        check([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
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

_ENGINES = itertools.count()


class Engine:
    def __init__(self, root):
        self.root = Path(root)
        self.netns = f"pimg-{os.getpid()}-{next(_ENGINES)}"
        self.sock = self.root / "docker.sock"
        self.pidfile = self.root / "dockerd.pid"
        self.log = self.root / "dockerd.log"
        self.pids = []  # processes started here (in the order to stop them last-first)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_CONTEXT", None)
        self.storage_driver = None
        self.has_netns = False
        self.dockerd = None
        self.http = None

    def nsenter(self):
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def start(self):
        check(["ip", "netns", "add", self.netns], 30)
        self.has_netns = True
        check(["ip", "-n", self.netns, "link", "set", "lo", "up"], 30)
        cmd = [*self.nsenter(), "dockerd", "--data-root", self.root / "data", "--exec-root", self.root / "exec",
               "--host", f"unix://{self.sock}", "--pidfile", self.pidfile, "--iptables=false",
               "--ip6tables=false", "--bridge=none", "--storage-driver", "overlay2"]
        with open(self.log, "wb") as log:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
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
        return run(["docker", *args], timeout, env=self.env, **kwargs)

    def serve(self, folder):
        """python -m http.server on 127.0.0.1 inside the namespace; returns its URL once it listens."""
        with open(self.root / "http.log", "wb") as log:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
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
        if self.sock.exists() and self.pids and pid_alive(self.pids[0]):
            ids = self.docker(["ps", "-aq"], timeout=30).stdout.split()
            if ids:
                self.docker(["rm", "-f", *ids], timeout=120)
        for pid in reversed(self.pids):
            if stop_pid(pid, grace=30):
                problems.append(f"pid {pid} needed SIGKILL")
        for proc in (self.http, self.dockerd):
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"pid {proc.pid} not reaped")
        if self.has_netns:
            # containerd and shims are dockerd's; anything still in the namespace is stopped by PID
            left = run(["ip", "netns", "pids", self.netns], 30).stdout.split()
            for pid in map(int, left):
                problems.append(f"pid {pid} left in {self.netns}")
                stop_pid(pid, grace=10)
            run(["ip", "netns", "del", self.netns], 30)
            self.has_netns = False
        # dockerd leaves the bind mount of its network namespace (exec-root/netns/default, nsfs) behind by
        # design; anything else (overlay, bind mounts of containers) would be a leak
        leftover_mounts = mounts_under(self.root, ignore_fstypes=("nsfs",))
        if leftover_mounts:
            problems.append(f"mounts left: {leftover_mounts}")
        remove_tree(self.root)
        return problems


@contextlib.contextmanager
def running_engine():
    """A fresh Engine in a short folder under the temp dir; stopped, and its folder (GBs) removed, on the way out.

    Raises AssertionError on the way out if the engine left something behind."""
    # short: containerd's socket lives below the exec root (unix socket paths are limited to 108 bytes)
    root = tempfile.mkdtemp(prefix="pimg-", dir=tempfile.gettempdir())
    eng = Engine(root)
    problems = []
    try:
        eng.start()
        yield eng
    finally:
        problems = eng.stop()
    assert not problems, problems
    assert not os.path.exists(root)


# --- the archive ---------------------------------------------------------------------------------------------


def _context_files():
    """The build context's files (what `docker build ... trainer/` may read), without caches and build outputs."""
    skip_dirs = {"__pycache__", "build", "dist", ".pytest_cache"}
    for path in sorted(TRAINER.rglob("*")):
        rel = path.relative_to(TRAINER)
        if path.is_file() and not skip_dirs.intersection(rel.parts[:-1]) and path.suffix != ".pyc" \
                and not any(part.endswith(".egg-info") for part in rel.parts):
            yield rel, path


def build_args(url):
    """The build arguments of the offline build, given the wheel server's URL."""
    # No index at all (WHEELS_ONLY=1); the index URLs point at the wheel folder too, so even a pip that ignored
    # PIP_NO_INDEX could reach nothing else.
    return {"BASE_IMAGE": BASE_TAG, "WHEELS_ONLY": "1", "WHEEL_FIND_LINKS": url, "TORCH_INDEX_URL": url,
            "PYPI_INDEX_URL": url}


def inputs_key(wheels):
    """Hash of everything the build reads: the context's files, the wheels' names, the base and the arguments."""
    digest = hashlib.sha256()
    digest.update(f"format {ARCHIVE_FORMAT}\nimage {IMAGE_TAG}\nbase {' '.join(DEBOOTSTRAP)}\n".encode())
    digest.update(json.dumps(build_args(f"http://127.0.0.1:{WHEEL_PORT}/"), sort_keys=True).encode())
    for name in sorted(wheels):
        digest.update(f"wheel {name}\n".encode())
    for rel, path in _context_files():
        digest.update(f"file {rel.as_posix()} {os.stat(path).st_mode & 0o111:o}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class ImageArchive:
    """A `docker save` archive of the trainer image and what its build did."""

    archive: Path
    tag: str
    key: str
    built_now: bool
    record: dict

    @property
    def build_log(self):
        return self.archive.with_suffix(".build.log").read_text(encoding="utf-8")


def _archive_paths(key):
    archive = CACHE / f"{ARCHIVE_PREFIX}{key}.tar"
    return archive, archive.with_suffix(".json"), archive.with_suffix(".build.log")


def _remove_other_archives(key):
    """Older archives (other inputs) are GBs each: only the current one stays."""
    keep = set(_archive_paths(key))
    for path in CACHE.glob(ARCHIVE_PREFIX + "*"):
        if path not in keep:
            path.unlink(missing_ok=True)


def build_archive(key, wheels):
    """Build the image in a fresh engine and `docker save` it; returns the record written next to the archive."""
    archive, record_path, log_path = _archive_paths(key)
    timings = {}
    with running_engine() as engine:
        assert engine.storage_driver == "overlay2", engine.storage_driver
        t0 = time.monotonic()
        tarball, made = base_rootfs_tarball(engine.root)
        timings["debootstrap" if made else "base tarball (cached)"] = time.monotonic() - t0
        t0 = time.monotonic()
        check(["docker", "import", "--change", f"ENV PATH={PATH_ENV}", tarball, BASE_TAG], 300, env=engine.env)
        timings["docker import"] = time.monotonic() - t0

        folder = engine.root / "wheels"
        folder.mkdir()
        for name, path in wheels.items():
            (folder / name).symlink_to(path)
        url = engine.serve(folder)

        args = [a for name, value in build_args(url).items() for a in ("--build-arg", f"{name}={value}")]
        t0 = time.monotonic()
        build = engine.docker(["build", "--network", "host", "-f", DOCKERFILE, "-t", IMAGE_TAG, *args, TRAINER],
                              timeout=900)
        timings["docker build"] = time.monotonic() - t0
        partial_log = log_path.with_name(log_path.name + f".{os.getpid()}")
        partial_log.write_text(build.stdout + build.stderr, encoding="utf-8")
        assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-3000:]
        size = int(engine.docker(["image", "inspect", "-f", "{{.Size}}", IMAGE_TAG]).stdout.strip())

        t0 = time.monotonic()
        partial = archive.with_name(archive.name + f".{os.getpid()}")
        try:
            check(["docker", "save", "-o", partial, IMAGE_TAG], 900, env=engine.env)
            os.replace(partial, archive)
        finally:
            partial.unlink(missing_ok=True)
        timings["docker save"] = time.monotonic() - t0
    os.replace(partial_log, log_path)
    record = {"key": key, "tag": IMAGE_TAG, "image_size": size, "archive_size": archive.stat().st_size,
              "storage_driver": "overlay2", "build_url": url, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "timings": {k: round(v, 1) for k, v in timings.items()}}
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    return record


@contextlib.contextmanager
def _timeout_paused():
    """Suspend pytest-timeout's SIGALRM timer (signal method) while the block runs, then give back what was left."""
    left, _interval = signal.getitimer(signal.ITIMER_REAL)
    if left > 0:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)


def trainer_image_archive_now():
    """The cached archive of the current inputs, built first when missing (one build at a time: a file lock)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "image.lock", "w", encoding="ascii") as lock, _timeout_paused():
        fcntl.flock(lock, fcntl.LOCK_EX)
        wheels = wheelhouse()
        key = inputs_key(wheels)
        archive, record_path, log_path = _archive_paths(key)
        rebuild = os.environ.get(REBUILD_ENV) == "1"
        if archive.exists() and record_path.exists() and log_path.exists() and not rebuild:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            return ImageArchive(archive, record["tag"], key, False, record)
        require(BUILD_FREE_BYTES)
        _remove_other_archives("none" if rebuild else key)
        t0 = time.monotonic()
        record = build_archive(key, wheels)
        sys.stderr.write(f"\ntrainer image: built and saved in {time.monotonic() - t0:.0f} s: {archive} "
                         f"({record['archive_size'] / 1e9:.2f} GB) {json.dumps(record['timings'])}\n")
        return ImageArchive(archive, record["tag"], key, True, record)


@pytest.fixture(scope="session")
def trainer_image():
    """ImageArchive of the CPU trainer image: built at most once per session, reused from .cache across them."""
    require(LOAD_FREE_BYTES)
    return trainer_image_archive_now()


@pytest.fixture(scope="session")
def trainer_image_archive(trainer_image):  # pylint: disable=redefined-outer-name
    """Environment of a molecule scenario that loads the trainer image (its requires-fixtures file names this)."""
    return {"PARAMOUNT_TRAINER_IMAGE_ARCHIVE": str(trainer_image.archive), "PARAMOUNT_TRAINER_IMAGE": trainer_image.tag}
