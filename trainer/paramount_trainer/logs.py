"""The node's ``<node>.log`` (JSON lines, contract v1, all local ranks) and ``<node>.out`` (human progress)."""
import datetime
import json
import math
import os
import socket
import time
import uuid

from . import LOG_SCHEMA_VERSION

_IMPORT_TIME = time.time()


def process_start_time():
    """Unix time at which this process started (Linux: /proc, 10 ms resolution; else module import time)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            stat = fh.read()
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime since boot
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        started = time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
        if 0 < started <= time.time() and time.time() - started < 86400 * 365:
            return min(started, _IMPORT_TIME)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_TIME


def default_node_name():
    return socket.gethostname() or "localhost"


def default_run_id():
    """PARAMOUNT_RUN_ID, else torchrun's TORCHELASTIC_RUN_ID (the rendezvous id, shared by all workers),
    else a new id (the caller makes it agree across ranks)."""
    for var in ("PARAMOUNT_RUN_ID", "TORCHELASTIC_RUN_ID"):
        value = os.environ.get(var, "").strip()
        if value and value.lower() != "none":
            return value
    return new_run_id()


def new_run_id():
    return datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def attempt_number():
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    except ValueError:
        return 0


def _clean(value):
    """JSON-safe: non-finite floats become null (the log must stay valid JSON), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _write_all(fd, data):
    # O_APPEND + one write() per line: lines of local ranks never interleave mid-line.
    written = os.write(fd, data)
    while written < len(data):  # a short write on a regular file is practically impossible; finish it anyway
        written += os.write(fd, data[written:])


class RunLogger:
    """Writes contract-v1 records to ``<log_dir>/<node>.log`` and progress to ``<log_dir>/<node>.out``."""

    def __init__(self, log_dir, node_name, run_id, rank=0, attempt=0, local_rank=0, echo=True):
        self.node_name = node_name
        self.run_id = run_id
        self.rank = int(rank)
        self.local_rank = int(local_rank)
        self.attempt = int(attempt)
        self.echo = echo
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"{node_name}.log")
        self.out_path = os.path.join(log_dir, f"{node_name}.out")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._log_fd = os.open(self.log_path, flags, 0o644)
        self._out_fd = os.open(self.out_path, flags, 0o644)

    def record(self, event, **fields):
        rec = {"event": event, "schema": LOG_SCHEMA_VERSION, "run_id": self.run_id, "host": self.node_name,
               "rank": self.rank, "attempt": self.attempt, "time": time.time()}
        rec.update(fields)
        line = json.dumps(_clean(rec), allow_nan=False, separators=(",", ":")) + "\n"
        _write_all(self._log_fd, line.encode("utf-8"))
        return rec

    def progress(self, text, all_ranks=False, echo=None):
        """A human-readable line in ``.out`` (local rank 0 only unless ``all_ranks``), echoed to stdout."""
        if not all_ranks and self.local_rank != 0:
            return
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} [{self.node_name} rank {self.rank}] {text}\n"
        _write_all(self._out_fd, line.encode("utf-8"))
        if self.echo if echo is None else echo:
            print(line, end="", flush=True)

    def close(self):
        for fd in (self._log_fd, self._out_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log_fd = self._out_fd = -1


def read_records(path):
    """All records of a ``.log`` file (a list of dicts), for tests and tools."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
