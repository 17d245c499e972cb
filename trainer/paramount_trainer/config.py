"""Presets and the resolved training configuration.

``paper`` holds the defaults of eriklindernoren/PyTorch-GAN's ``implementations/esrgan/esrgan.py`` (the seed
implementation) plus its model sizes; ``small`` and ``tiny`` shrink the model and image size only and keep the
training hyperparameters, apart from the epoch count, the warm-up length and the intervals, which scale with them.
Every value can be overridden on the command line; an option left unset takes the preset's value.
"""
import dataclasses
import hashlib
import json
import os

from .errors import ConfigError

#: The training phases: pixel-loss-only warm-up steps of G, then adversarial steps of G and D.
WARMUP, ADVERSARIAL = "warmup", "adversarial"

#: Keys every preset defines (all are command-line options of ``train``).
PRESET_KEYS = (
    "epochs", "batch_size", "lr", "b1", "b2", "n_cpu", "hr_height", "hr_width", "channels",
    "sample_interval", "checkpoint_interval", "residual_blocks", "filters", "d_widths", "vgg_layers",
    "vgg_weights", "warmup_batches", "lambda_adv", "lambda_pixel",
)

_PAPER = {
    # argparse defaults of esrgan.py
    "epochs": 200, "batch_size": 4, "lr": 2e-4, "b1": 0.9, "b2": 0.999, "n_cpu": 8,
    "hr_height": 256, "hr_width": 256, "channels": 3, "sample_interval": 100, "checkpoint_interval": 5000,
    "residual_blocks": 23, "warmup_batches": 500, "lambda_adv": 5e-3, "lambda_pixel": 1e-2,
    # model sizes of models.py: GeneratorRRDB(filters=64), Discriminator widths 64..512, vgg19.features[:35]
    "filters": 64, "d_widths": (64, 128, 256, 512), "vgg_layers": 35, "vgg_weights": "imagenet",
}

PRESETS = {
    "paper": dict(_PAPER),
    # G f32/3 blocks (1.34M params), D 32..256, VGG up to conv3_4 before its ReLU; about 1.5 s/step on 1 core
    "small": dict(_PAPER, epochs=20, hr_height=128, hr_width=128, n_cpu=2, residual_blocks=3, filters=32,
                  d_widths=(32, 64, 128, 256), vgg_layers=17, vgg_weights="none", checkpoint_interval=500),
    # G f16/1 block (128k params), D 16..128, VGG up to conv2_2 before its ReLU, hr 64: well under 1 s/step
    "tiny": dict(_PAPER, epochs=2, hr_height=64, hr_width=64, n_cpu=0, residual_blocks=1, filters=16,
                 d_widths=(16, 32, 64, 128), vgg_layers=8, vgg_weights="none", warmup_batches=10,
                 sample_interval=50, checkpoint_interval=100),
}

#: VGG19 feature layers (torchvision ``vgg19().features``) that are a conv output before its ReLU, i.e. valid
#: ``--vgg-layers`` values in the ESRGAN sense (35 = conv5_4, the paper's choice). Other values 1..36 are accepted.
VGG_PRE_RELU_CUTS = {1: "conv1_1", 3: "conv1_2", 6: "conv2_1", 8: "conv2_2", 11: "conv3_1", 13: "conv3_2",
                     15: "conv3_3", 17: "conv3_4", 20: "conv4_1", 22: "conv4_2", 24: "conv4_3", 26: "conv4_4",
                     29: "conv5_1", 31: "conv5_2", 33: "conv5_3", 35: "conv5_4"}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What determines the model architecture: a checkpoint must match it to be loaded."""
    channels: int
    filters: int
    residual_blocks: int
    d_widths: tuple
    hr_height: int
    hr_width: int

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["d_widths"] = list(self.d_widths)
        return d


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    preset: str
    epochs: int
    batch_size: int
    lr: float
    b1: float
    b2: float
    n_cpu: int
    hr_height: int
    hr_width: int
    channels: int
    sample_interval: int
    checkpoint_interval: int
    residual_blocks: int
    filters: int
    d_widths: tuple
    vgg_layers: int
    vgg_weights: str
    warmup_batches: int
    lambda_adv: float
    lambda_pixel: float

    @property
    def model(self):
        return ModelConfig(self.channels, self.filters, self.residual_blocks, tuple(self.d_widths),
                           self.hr_height, self.hr_width)

    def workload(self, train_samples):
        """A stable id of what determines the work of an iteration, and of an epoch.

        Readable part: preset, HR size, per-rank batch, training-set size; the hash covers the model sizes and
        the VGG cut too (so overriding e.g. ``--filters`` yields another workload). The job's length (epochs,
        warm-up steps) is not part of it: those are separate keys of the ``start`` record.
        """
        work = {
            "model": self.model.as_dict(), "vgg_layers": self.vgg_layers, "batch_size": self.batch_size,
            "train_samples": int(train_samples),
        }
        digest = hashlib.sha256(json.dumps(work, sort_keys=True).encode()).hexdigest()[:8]
        return (f"esrgan-{self.preset}-{self.hr_height}x{self.hr_width}-b{self.batch_size}"
                f"-n{int(train_samples)}-{digest}")


def parse_widths(text):
    """``"64,128,256,512"`` -> ``(64, 128, 256, 512)``."""
    if isinstance(text, (tuple, list)):
        return tuple(int(x) for x in text)
    try:
        widths = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--d-widths must be comma-separated integers, got {text!r}") from None
    if not widths:
        raise ConfigError(f"--d-widths must list at least one width, got {text!r}")
    return widths


def resolve(args):
    """Merge a parsed ``train`` namespace with its preset into a :class:`TrainConfig` and validate it."""
    preset = args.preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    for key in PRESET_KEYS:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    values["d_widths"] = parse_widths(values["d_widths"])
    cfg = TrainConfig(preset=preset, **values)
    _validate(cfg)
    return cfg


def _validate(cfg):
    def positive(name, value, minimum=1):
        if value < minimum:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")

    for name in ("epochs", "batch_size", "channels", "residual_blocks", "filters", "hr_height", "hr_width"):
        positive(name, getattr(cfg, name))
    for name in ("n_cpu", "sample_interval", "checkpoint_interval", "warmup_batches"):
        positive(name, getattr(cfg, name), 0)
    for name in ("hr_height", "hr_width"):
        if getattr(cfg, name) % 4:
            raise ConfigError(f"--{name.replace('_', '-')} must be a multiple of 4 (x4 super-resolution), "
                              f"got {getattr(cfg, name)}")
    if not 1 <= cfg.vgg_layers <= 36:
        raise ConfigError(f"--vgg-layers must be between 1 and 36 (VGG19 features), got {cfg.vgg_layers}")
    if cfg.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {cfg.lr}")
    if cfg.channels != 3 and cfg.vgg_layers:
        raise ConfigError("--channels other than 3 is not supported: the VGG19 content loss needs RGB")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything the :class:`~paramount_trainer.trainer.Trainer` and the objects built for it read: the
    hyperparameters (``training``) and this run's options, resolved once from the ``train`` command line."""
    training: TrainConfig
    data: str
    holdout: object            # int, or None for the default split
    seed: int
    output_dir: str
    instance_type: str
    checkpoint_dir: str
    checkpointing: bool        # a forced-phase probe is not real progress: it neither reads nor writes them
    keep_checkpoints: int
    resume: str                # auto, never or a path
    probe_phases: object       # the --probe-phases text as given (logged), or None
    probe_plan: tuple          # ((phase, steps), ...) of --probe-phases; empty without
    max_iterations: int        # steps of this process before it stops (0: no limit); a probe plan's total
    window_seconds: float      # the compute-only window after each probe phase's first step (0: none)
    print_interval: int
    elastic: bool
    debug_slow: object         # (rank, seconds) or None: tests only


def resolve_run(args):
    """Resolve a parsed ``train`` namespace into a :class:`RunConfig` (hyperparameters via :func:`resolve`)."""
    training = resolve(args)
    probe_plan = tuple(parse_probe_phases(args.probe_phases)) if args.probe_phases else ()
    max_iterations = args.max_iterations
    if probe_plan:
        total = sum(n for _phase, n in probe_plan)
        max_iterations = min(total, max_iterations) if max_iterations else total
    return RunConfig(
        training=training, data=args.data, holdout=args.holdout, seed=args.seed, output_dir=args.output_dir,
        instance_type=args.instance_type or os.environ.get("PARAMOUNT_INSTANCE_TYPE") or "unknown",
        checkpoint_dir=args.checkpoint_dir or os.path.join(args.output_dir, "checkpoints"),
        checkpointing=not args.no_checkpoint and not probe_plan, keep_checkpoints=args.keep_checkpoints,
        resume=args.resume, probe_phases=args.probe_phases, probe_plan=probe_plan, max_iterations=max_iterations,
        window_seconds=getattr(args, "probe_window", 0.0) if probe_plan else 0.0,
        print_interval=args.print_interval, elastic=args.elastic, debug_slow=parse_debug_slow(args.debug_slow_rank),
    )


def parse_probe_phases(text):
    """``"warmup:3,adversarial:10"`` -> [("warmup", 3), ("adversarial", 10)]."""
    plan = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _sep, count = part.partition(":")
        name = name.strip()
        if name not in (WARMUP, ADVERSARIAL):
            raise ConfigError(f"--probe-phases: unknown phase {name!r} (use warmup and adversarial)")
        try:
            n = int(count)
        except ValueError:
            raise ConfigError(f"--probe-phases: {part!r} is not PHASE:COUNT") from None
        if n < 0:
            raise ConfigError(f"--probe-phases: negative count in {part!r}")
        plan.append((name, n))
    if sum(n for _phase, n in plan) < 1:
        raise ConfigError(f"--probe-phases {text!r} runs no step")
    return plan


def parse_debug_slow(text):
    """``--debug-slow-rank RANK:SECONDS`` (tests only) -> (rank, seconds), or None."""
    if not text:
        return None
    rank, _sep, seconds = str(text).partition(":")
    try:
        return int(rank), float(seconds)
    except ValueError:
        raise ConfigError(f"--debug-slow-rank must be RANK:SECONDS, got {text!r}") from None
