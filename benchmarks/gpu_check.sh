#!/usr/bin/env bash
# GPU check of the trainer's timing: the trainer at world size 1 on CUDA, run from this checkout.
#
#   benchmarks/gpu_check.sh                 # on a machine with an NVIDIA GPU (about a minute)
#   PYTHON=/opt/conda/bin/python benchmarks/gpu_check.sh
#   benchmarks/gpu_check.sh --cpu-dry-run   # the same steps on the CPU, tiny preset: tests this script only
#
# Self-contained: the machine's own Python with torch, torchvision, numpy and Pillow (no venv, nothing to
# install), the trainer from this checkout (PYTHONPATH=trainer), a synthetic image set written to a temporary
# folder, no network. It runs `python -m torch.distributed.run --standalone --nproc-per-node 1` (DDP, nccl) of
# `paramount_trainer train --preset small --device cuda` for 3 short epochs through a driver that, at every
# iteration and epoch record the trainer writes, synchronizes CUDA and reads its own clock (an independent
# wall clock: not the trainer's StepClock). Then it
#   1. validates every log record against trainer/paramount_trainer/schemas/log-record-v1.schema.json (with
#      jsonschema if the Python has it; else a minimal check of the schema's required keys, types, constants
#      and minimums, and it says so);
#   2. per phase (warmup, adversarial), compares the logged s/iter (mean `seconds` of the iteration records) to
#      the independent clock over the same iterations (span between the first and the last iteration record of
#      each epoch's run of the phase, the first 2 iterations of a phase left out); within 5%, else it fails;
#   3. compares each epoch's logged `eval_seconds` (the PSNR pass) to the independent clock from the last
#      iteration record of the epoch to the epoch record; within 5% (or 2 ms), else it fails;
#   4. prints the figures, the card (nvidia-smi) and one JSON line.
# Exit status: 0 every check passed, 1 a check failed, 2 it could not run (no CUDA device, a module missing).
# KEEP=1 keeps the work folder (logs, the driver's marks); GPU_CHECK_JSONSCHEMA=0 uses the minimal check.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
MODE=cuda
case "${1:-}" in
  "") ;;
  --cpu-dry-run) MODE=cpu ;;
  -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac
export PYTHONPATH="$REPO/trainer${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT PARAMOUNT_RUN_ID

# --- can it run at all? ---------------------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "gpu_check: no Python at '$PYTHON' (set PYTHON=/path/to/python with torch)" >&2
  exit 2
fi
GPU_CHECK_MODE=$MODE "$PYTHON" - <<'EOF' || exit $?
import importlib.util
import os
import sys

missing = [name for name in ("torch", "torchvision", "numpy", "PIL") if importlib.util.find_spec(name) is None]
if missing:
    print("gpu_check: %s cannot import %s: the trainer needs torch, torchvision, numpy and Pillow; "
          "nothing was checked" % (sys.executable, ", ".join(missing)), file=sys.stderr)
    sys.exit(2)
import torch

if os.environ["GPU_CHECK_MODE"] == "cuda" and not torch.cuda.is_available():
    print("gpu_check: no CUDA device: torch %s (built for CUDA %s) of %s sees none (CUDA_VISIBLE_DEVICES=%s); "
          "this check needs an NVIDIA GPU, nothing was checked"
          % (torch.__version__, torch.version.cuda, sys.executable, os.environ.get("CUDA_VISIBLE_DEVICES", "unset")),
          file=sys.stderr)
    sys.exit(2)
EOF

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paramount-gpu-check.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "gpu_check: work folder $WORK (kept)"; else trap 'rm -rf "$WORK"' EXIT; fi

if [ "$MODE" = cuda ]; then
  PRESET=small IMAGES=600 BATCH=8 EPOCHS=3 WARMUP=40 HOLDOUT=30
else
  PRESET=tiny IMAGES=120 BATCH=4 EPOCHS=2 WARMUP=12 HOLDOUT=6
fi

echo "== card"
if [ "$MODE" = cuda ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee "$WORK/card.txt"
else
  echo "nvidia-smi: $([ "$MODE" = cuda ] && echo "not found" || echo "not run (CPU dry run)")" | tee "$WORK/card.txt"
fi
"$PYTHON" -c 'import sys, torch; print("python %s, torch %s, CUDA %s, device: %s" % (sys.version.split()[0],
torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"))' \
  | tee -a "$WORK/card.txt"

# --- a synthetic image set (deterministic; no download) --------------------------------------------------
"$PYTHON" - "$WORK/data" "$IMAGES" <<'EOF'
import os
import sys

import numpy as np
from PIL import Image

out, count = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = np.random.default_rng(0)
y, x = np.mgrid[0:128, 0:128] / 128.0
for i in range(count):
    a, b, c = rng.uniform(2, 12, 3)
    phase = rng.uniform(0, 6.28, 3)
    rgb = np.stack([np.sin(a * x + phase[0]) * np.cos(b * y), np.sin(b * x * y * 4 + phase[1]),
                    np.cos(c * (x - y) + phase[2])], -1)
    rgb = (rgb + 1) / 2 * 200 + rng.normal(0, 12, rgb.shape)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(os.path.join(out, "img_%05d.png" % i))
EOF

# --- the driver: the trainer's own CLI, with an independent synchronized clock at every record ----------
cat >"$WORK/driver.py" <<'EOF'
import json
import os
import sys
import time

import torch

from paramount_trainer import cli, logs

CUDA = os.environ["GPU_CHECK_MODE"] == "cuda"
marks = {"iteration": [], "epoch": []}
original_record = logs.RunLogger.record


def record(self, event, **fields):
    if event in marks:
        if CUDA:
            torch.cuda.synchronize()
        marks[event].append({"step": fields.get("step"), "epoch": fields.get("epoch"), "t": time.perf_counter()})
    return original_record(self, event, **fields)


logs.RunLogger.record = record
code = cli.main(sys.argv[1:])
with open(os.environ["GPU_CHECK_MARKS"], "w", encoding="utf-8") as out:
    json.dump(marks, out)
sys.exit(code)
EOF

echo "== training: preset $PRESET on $MODE, $IMAGES images, batch $BATCH, $EPOCHS epochs, warm-up $WARMUP steps"
TIMEOUT=()
command -v timeout >/dev/null 2>&1 && TIMEOUT=(timeout 900)
started=$(date +%s)
if ! GPU_CHECK_MODE=$MODE GPU_CHECK_MARKS="$WORK/marks.json" "${TIMEOUT[@]}" "$PYTHON" -m torch.distributed.run \
    --standalone --nproc-per-node 1 "$WORK/driver.py" train --quiet --device "$MODE" --preset "$PRESET" \
    --data "$WORK/data" --holdout "$HOLDOUT" --batch-size "$BATCH" --epochs "$EPOCHS" --warmup-batches "$WARMUP" \
    --sample-interval 0 --no-checkpoint --output-dir "$WORK/out" --log-dir "$WORK/logs" --node-name gpu-check \
    --instance-type gpu-check --run-id gpu-check >"$WORK/torchrun.txt" 2>&1; then
  tail -n 30 "$WORK/torchrun.txt" >&2
  echo "gpu_check: FAIL: the training did not complete (output above; KEEP=1 keeps $WORK)" >&2
  exit 1
fi
echo "trained in $(( $(date +%s) - started )) s (with init)"

# --- the checks ------------------------------------------------------------------------------------------
"$PYTHON" - "$WORK" "$MODE" <<'EOF'
import json
import os
import statistics
import sys

work, mode = sys.argv[1], sys.argv[2]
TOLERANCE, SKIP = 0.05, 2
from paramount_trainer import load_log_schema  # noqa: E402  (PYTHONPATH=trainer)

schema = load_log_schema()
with open(os.path.join(work, "logs", "gpu-check.log"), encoding="utf-8") as log:
    records = [json.loads(line) for line in log if line.strip()]
failures = []


def minimal_errors(record):
    """Without jsonschema: required keys, types, constants, enums and minimums of the schema, per event."""
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
             "array": list, "null": type(None)}
    parts = [schema] + [part["then"] for part in schema.get("allOf", [])
                        if part["if"]["properties"]["event"]["const"] == record.get("event")]
    errors = []
    for part in parts:
        errors += ["missing %r" % key for key in part.get("required", []) if key not in record]
        for key, spec in part.get("properties", {}).items():
            if key not in record:
                continue
            value = record[key]
            allowed = spec.get("type")
            if allowed:
                allowed = [allowed] if isinstance(allowed, str) else allowed
                ok = any(isinstance(value, types[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                         for t in allowed)
                if not ok:
                    errors.append("%s: %r is not %s" % (key, value, "/".join(allowed)))
                    continue
            if "const" in spec and value != spec["const"]:
                errors.append("%s: %r != %r" % (key, value, spec["const"]))
            if "enum" in spec and value not in spec["enum"]:
                errors.append("%s: %r not in %r" % (key, value, spec["enum"]))
            if "minimum" in spec and isinstance(value, (int, float)) and value < spec["minimum"]:
                errors.append("%s: %r < %r" % (key, value, spec["minimum"]))
    return errors


try:
    if os.environ.get("GPU_CHECK_JSONSCHEMA", "1") == "0":
        raise ImportError("GPU_CHECK_JSONSCHEMA=0")
    import jsonschema
    from importlib import metadata
    validator = jsonschema.Draft202012Validator(schema)
    how = "jsonschema %s (Draft 2020-12)" % metadata.version("jsonschema")
    errors_of = lambda record: [error.message for error in validator.iter_errors(record)]  # noqa: E731
except ImportError:
    how = "a minimal check (without jsonschema: required keys, types, constants, enums, minimums only)"
    errors_of = minimal_errors
invalid = [(i, errors_of(r)) for i, r in enumerate(records)]
invalid = [(i, e) for i, e in invalid if e]
events = [r["event"] for r in records]
print("== records: %d (%s), validated with %s: %s" % (
    len(records), ", ".join("%s %d" % (e, events.count(e)) for e in ("start", "init", "iteration", "epoch", "end")),
    how, "all valid" if not invalid else "%d INVALID" % len(invalid)))
for i, errors in invalid[:5]:
    print("   record %d (%s): %s" % (i + 1, records[i]["event"], "; ".join(errors[:3])))
if invalid:
    failures.append("%d invalid records" % len(invalid))
end = [r for r in records if r["event"] == "end"]
start = [r for r in records if r["event"] == "start"]
if not end or end[-1].get("status") != "completed":
    failures.append("no end record with status completed")
if start and mode == "cuda" and not str(start[0].get("device", "")).startswith("cuda"):
    failures.append("the trainer ran on %s, not CUDA" % start[0].get("device"))

with open(os.path.join(work, "marks.json"), encoding="utf-8") as handle:
    marks = json.load(handle)
iterations = [r for r in records if r["event"] == "iteration"]
clock = {m["step"]: m["t"] for m in marks["iteration"]}
if len(clock) != len(iterations) or any(r["step"] not in clock for r in iterations):
    failures.append("the driver's marks do not match the iteration records")

# runs of consecutive iterations of one phase within one epoch (an evaluation lies between epochs)
runs, seen_phase = [], {}
for r in iterations:
    key = (r["epoch"], r["phase"])
    if not runs or runs[-1][0] != key or r["step"] != runs[-1][1][-1]["step"] + 1:
        runs.append((key, []))
    runs[-1][1].append(r)
print("== s/iter per phase: logged (mean `seconds` of the iteration records) vs the independent synchronized "
      "clock over the same iterations")
phases = {}
for (epoch, phase), run in runs:
    if seen_phase.setdefault(phase, 0) < SKIP:  # the first iterations of a phase: allocator, cuDNN autotune
        dropped = min(SKIP - seen_phase[phase], len(run))
        seen_phase[phase] += dropped
        run = run[dropped:]
    if len(run) < 3:
        continue
    wall = clock[run[-1]["step"]] - clock[run[0]["step"]]  # from the end of the first to the end of the last
    logged = sum(r["seconds"] for r in run[1:])
    total = phases.setdefault(phase, {"iterations": 0, "logged": 0.0, "wall": 0.0, "seconds": []})
    total["iterations"] += len(run) - 1
    total["logged"] += logged
    total["wall"] += wall
    total["seconds"] += [r["seconds"] for r in run[1:]]
    print("   epoch %d %-11s steps %4d-%-4d  logged %.5f s/iter  clock %.5f s/iter  ratio %.4f" % (
        epoch, phase, run[1]["step"], run[-1]["step"], logged / (len(run) - 1), wall / (len(run) - 1),
        logged / wall))
summary = {"mode": mode, "records": len(records), "validated_with": how.split(" (")[0], "phases": {}, "eval": []}
for phase, total in phases.items():
    ratio = total["logged"] / total["wall"]
    ok = abs(ratio - 1) <= TOLERANCE
    print("   %-11s %4d iterations: logged %.5f s/iter (median %.5f), clock %.5f s/iter, logged/clock %.4f  %s" % (
        phase, total["iterations"], total["logged"] / total["iterations"], statistics.median(total["seconds"]),
        total["wall"] / total["iterations"], ratio, "ok" if ok else "FAIL (more than 5% apart)"))
    summary["phases"][phase] = {"iterations": total["iterations"],
                                "logged_s_per_iter": round(total["logged"] / total["iterations"], 6),
                                "clock_s_per_iter": round(total["wall"] / total["iterations"], 6),
                                "ratio": round(ratio, 4)}
    if not ok:
        failures.append("%s: logged s/iter %.4f x the clock's" % (phase, ratio))
for phase in ("warmup", "adversarial"):
    if phase not in phases:
        failures.append("no %s iterations to compare" % phase)

print("== evaluation (PSNR pass): logged eval_seconds vs the clock from the epoch's last iteration record")
epochs = [r for r in records if r["event"] == "epoch"]
epoch_marks = [m["t"] for m in marks["epoch"]]
for r, t_epoch in zip(epochs, epoch_marks):
    last = max((i for i in iterations if i["epoch"] == r["epoch"]), key=lambda i: i["step"])
    wall = t_epoch - clock[last["step"]]
    ok = abs(r["eval_seconds"] - wall) <= max(TOLERANCE * wall, 0.002)
    print("   epoch %d: eval_seconds %.4f s, clock %.4f s, PSNR %s dB  %s" % (
        r["epoch"], r["eval_seconds"], wall, r.get("psnr"), "ok" if ok else "FAIL"))
    summary["eval"].append({"epoch": r["epoch"], "eval_seconds": round(r["eval_seconds"], 5),
                            "clock_seconds": round(wall, 5)})
    if not ok:
        failures.append("epoch %d: eval_seconds %.4f s against %.4f s" % (r["epoch"], r["eval_seconds"], wall))
if not epochs:
    failures.append("no epoch record")

with open(os.path.join(work, "card.txt"), encoding="utf-8") as card:
    summary["card"] = " | ".join(line.strip() for line in card if line.strip())
summary["result"] = "FAIL" if failures else "PASS"
print(json.dumps(summary))
if failures:
    print("gpu_check: FAIL: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
print("gpu_check: PASS%s" % (" (a CPU dry run: these figures say nothing about a GPU)" if mode != "cuda" else ""))
EOF
