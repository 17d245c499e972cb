"""Command line: ``python -m paramount_trainer {train,make-dataset,validate-log}`` (also ``paramount-trainer``)."""
import argparse
import json
import math
import os
import sys

from . import __version__
from .config import PRESETS

_PAPER = PRESETS["paper"]


def _preset_help(text, key):
    values = ", ".join(f"{name} {_show(PRESETS[name][key])}" for name in PRESETS)
    return f"{text} (preset values: {values})"


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _nonneg_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _nonneg_float(text):
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_train_arguments(p):
    g = p.add_argument_group("run")
    g.add_argument("--preset", default="paper", metavar="{" + ",".join(PRESETS) + "}",
                   help="model/image size preset; 'paper' has the original esrgan.py defaults (default: paper)")
    g.add_argument("--data", metavar="DIR", help="folder of images, e.g. CelebA's img_align_celeba "
                   "(make one offline with the make-dataset command)")
    g.add_argument("--output-dir", default="output", metavar="DIR",
                   help="sample grids (images/), final generator.pt/discriminator.pt (default: output)")
    g.add_argument("--log-dir", metavar="DIR", help="where <node-name>.log and <node-name>.out go "
                   "(default: --output-dir)")
    g.add_argument("--node-name", metavar="NAME", help="node name in log file names and records "
                   "(default: the host name)")
    g.add_argument("--instance-type", metavar="T", help="logged in the start record "
                   "(default: $PARAMOUNT_INSTANCE_TYPE, else 'unknown')")
    g.add_argument("--run-id", metavar="ID", help="run id of every record (default: $PARAMOUNT_RUN_ID, else "
                   "torchrun's rendezvous id, else generated)")
    g.add_argument("--max-iterations", type=_nonneg_int, default=0, metavar="K",
                   help="probe: stop after K iterations of this process, end status 'stopped' (0: no limit)")
    g.add_argument("--probe-phases", metavar="SPEC", help="probe both phases, e.g. 'warmup:3,adversarial:10': "
                   "run that many steps of each phase in order, then stop; such a probe neither reads nor "
                   "writes checkpoints")
    g.add_argument("--probe-window", type=_nonneg_float, default=4.0, metavar="S",
                   help="with --probe-phases: after the first step of each phase, run that phase's steps for S "
                   "seconds (at least 4 steps, longer while their mean is imprecise: at most 3 x S) without "
                   "gradient all-reduce and time them (the rank's own speed, logged as window_seconds), then "
                   "restore model, optimisers and random state (0: no window; default: 4)")
    g.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per rank (default: 1)")
    g.add_argument("--seed", type=int, default=0, help="model init and shuffling seed (default: 0)")
    g.add_argument("--holdout", type=_nonneg_int, default=None, metavar="N",
                   help="images held out for the PSNR report (default: min(32, images/20); 0: none)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA (one GPU per local rank) when available, else CPU")
    g.add_argument("--dist-backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="auto: nccl on CUDA, gloo on CPU")
    g.add_argument("--dist-timeout", type=float, default=1800.0, metavar="S",
                   help="collective timeout in seconds (default: 1800)")
    g.add_argument("--elastic", action="store_true",
                   help="running under torchrun elastic (--nnodes MIN:MAX): a stop before the job is done (a "
                        "membership change, a peer's or this node's SIGTERM) exits with code 3 after the "
                        "checkpoint, so the agents re-form the group and resume instead of finishing")
    g.add_argument("--print-interval", type=int, default=10, metavar="N",
                   help="progress line every N steps in <node>.out (default: 10)")
    g.add_argument("--quiet", action="store_true", help="do not echo progress to stdout")
    g.add_argument("--debug-slow-rank", metavar="RANK:SECONDS", help=argparse.SUPPRESS)  # tests only

    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", metavar="DIR", help="checkpoint folder, node-private is fine "
                   "(default: OUTPUT_DIR/checkpoints)")
    c.add_argument("--checkpoint-interval", "--checkpoint_interval", dest="checkpoint_interval",
                   type=_nonneg_int, metavar="N",
                   help=_preset_help("checkpoint every N steps, 0: only at stop/end", "checkpoint_interval"))
    c.add_argument("--keep-checkpoints", type=_nonneg_int, default=2, metavar="N",
                   help="keep the N newest checkpoints (0: all; default: 2)")
    c.add_argument("--no-checkpoint", action="store_true", help="never read or write checkpoints")
    c.add_argument("--resume", default="auto", metavar="auto|never|PATH",
                   help="auto: continue from the newest checkpoint any node has (default); never; or a file")

    h = p.add_argument_group("hyperparameters (unset: the preset's value)")
    h.add_argument("--epochs", "--n_epochs", dest="epochs", type=int, metavar="N",
                   help=_preset_help("number of epochs of the job", "epochs"))
    h.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, metavar="N",
                   help=_preset_help("batch size per rank", "batch_size"))
    h.add_argument("--lr", type=float, help=_preset_help("Adam learning rate", "lr"))
    h.add_argument("--b1", type=float, help=_preset_help("Adam beta1", "b1"))
    h.add_argument("--b2", type=float, help=_preset_help("Adam beta2", "b2"))
    h.add_argument("--n-cpu", "--n_cpu", dest="n_cpu", type=_nonneg_int, metavar="N",
                   help=_preset_help("DataLoader worker processes per rank", "n_cpu"))
    h.add_argument("--hr-height", "--hr_height", dest="hr_height", type=int, metavar="PX",
                   help=_preset_help("high-res height", "hr_height"))
    h.add_argument("--hr-width", "--hr_width", dest="hr_width", type=int, metavar="PX",
                   help=_preset_help("high-res width", "hr_width"))
    h.add_argument("--channels", type=int, help=_preset_help("image channels", "channels"))
    h.add_argument("--sample-interval", "--sample_interval", dest="sample_interval", type=_nonneg_int,
                   metavar="N", help=_preset_help("save a low-res|super-res|high-res grid every N steps "
                                                  "(0: never)", "sample_interval"))
    h.add_argument("--residual-blocks", "--residual_blocks", dest="residual_blocks", type=int, metavar="N",
                   help=_preset_help("RRDB blocks in the generator", "residual_blocks"))
    h.add_argument("--filters", type=int, help=_preset_help("generator width", "filters"))
    h.add_argument("--d-widths", dest="d_widths", metavar="W1,W2,...",
                   help=_preset_help("discriminator stage widths", "d_widths"))
    h.add_argument("--vgg-layers", dest="vgg_layers", type=int, metavar="N",
                   help=_preset_help("VGG19 features[:N] for the content loss (35: conv5_4 before ReLU)",
                                     "vgg_layers"))
    h.add_argument("--vgg-weights", dest="vgg_weights", metavar="none|imagenet|PATH",
                   help=_preset_help("VGG19 weights: none (torchvision's init), imagenet (download) or a "
                                     "state-dict file", "vgg_weights"))
    h.add_argument("--warmup-batches", "--warmup_batches", dest="warmup_batches", type=_nonneg_int,
                   metavar="N", help=_preset_help("pixel-loss-only warm-up steps", "warmup_batches"))
    h.add_argument("--lambda-adv", "--lambda_adv", dest="lambda_adv", type=float,
                   help=_preset_help("adversarial loss weight", "lambda_adv"))
    h.add_argument("--lambda-pixel", "--lambda_pixel", dest="lambda_pixel", type=float,
                   help=_preset_help("pixel loss weight", "lambda_pixel"))
    return p


def build_parser():
    parser = argparse.ArgumentParser(
        prog="paramount-trainer",
        description="Distributed ESRGAN trainer with paramount-iteration logs (contract v1).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train ESRGAN (under torchrun or as one process)",
                           description="Train ESRGAN. Under torchrun every rank joins the job (gloo on CPU, "
                                       "nccl on GPU); without torchrun it runs as a single process.")
    add_train_arguments(train)

    make = sub.add_parser("make-dataset", help="write a deterministic offline data set of real-photo crops",
                          description="Write N deterministic square PNG crops of real photos shipped in "
                                      "scikit-image (and, with --sources all, matplotlib's grace_hopper.jpg).")
    make.add_argument("--out", required=True, metavar="DIR")
    make.add_argument("-n", type=int, default=1000, help="number of images (default: 1000)")
    make.add_argument("--size", type=int, default=128, help="side in pixels (default: 128)")
    make.add_argument("--seed", type=int, default=0, help="(default: 0)")
    make.add_argument("--sources", choices=("skimage", "all"), default="skimage",
                      help="skimage: scikit-image photos only (default); all: plus matplotlib's photo")

    val = sub.add_parser("validate-log", help="validate .log files against the record schema (needs jsonschema)")
    val.add_argument("files", nargs="+", metavar="FILE")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from .train import run_train

        return run_train(args)
    if args.command == "make-dataset":
        return _make_dataset(args)
    if args.command == "validate-log":
        return _validate_log(args)
    return 2


def _make_dataset(args):
    from .data import make_dataset
    from .errors import TrainerError

    try:
        manifest = make_dataset(args.out, n=args.n, size=args.size, seed=args.seed, sources=args.sources)
    except TrainerError as exc:
        print(f"paramount-trainer: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest['n']} images of {manifest['size']}x{manifest['size']} to {args.out} "
          f"(seed {manifest['seed']}, digest {manifest['digest'][:12]})")
    return 0


def _validate_log(args):
    try:
        import jsonschema
    except ImportError:
        print("paramount-trainer: error: validate-log needs the jsonschema package", file=sys.stderr)
        return 2
    from . import load_log_schema

    validator = jsonschema.Draft202012Validator(load_log_schema())
    bad = 0
    total = 0
    for path in args.files:
        if not os.path.isfile(path):
            print(f"{path}: no such file", file=sys.stderr)
            bad += 1
            continue
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                total += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    print(f"{path}:{lineno}: not JSON: {exc}", file=sys.stderr)
                    bad += 1
                    continue
                for err in validator.iter_errors(record):
                    print(f"{path}:{lineno}: {err.message}", file=sys.stderr)
                    bad += 1
    print(f"{total} records, {bad} problems")
    return 1 if bad else 0
