
import pytest

from paramount_trainer.cli import build_parser
from paramount_trainer.config import PRESETS, parse_debug_slow, parse_probe_phases, resolve
from paramount_trainer.errors import ConfigError


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_paper_preset_has_the_original_defaults():
    cfg = resolve(_args())
    assert cfg.preset == "paper"
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.b1, cfg.b2) == (200, 4, 2e-4, 0.9, 0.999)
    assert (cfg.hr_height, cfg.hr_width, cfg.channels, cfg.n_cpu) == (256, 256, 3, 8)
    assert (cfg.sample_interval, cfg.checkpoint_interval) == (100, 5000)
    assert (cfg.residual_blocks, cfg.filters, cfg.d_widths, cfg.vgg_layers) == (23, 64, (64, 128, 256, 512), 35)
    assert (cfg.warmup_batches, cfg.lambda_adv, cfg.lambda_pixel) == (500, 5e-3, 1e-2)
    assert cfg.vgg_weights == "imagenet"


def test_options_override_the_preset_and_original_spellings_work():
    cfg = resolve(_args("--preset", "tiny", "--batch_size", "2", "--hr-width", "96", "--d-widths", "8,16",
                        "--n_epochs", "7", "--vgg-weights", "none"))
    assert (cfg.batch_size, cfg.hr_height, cfg.hr_width, cfg.d_widths, cfg.epochs) == (2, 64, 96, (8, 16), 7)
    assert cfg.filters == PRESETS["tiny"]["filters"]


def test_unknown_preset_names_it_and_the_choices():
    with pytest.raises(ConfigError, match=r"unknown preset 'huge': choose one of paper, small, tiny"):
        resolve(_args("--preset", "huge"))


@pytest.mark.parametrize("argv,match", [
    (("--hr-height", "66"), "multiple of 4"),
    (("--vgg-layers", "40"), "--vgg-layers"),
    (("--batch-size", "0"), "--batch-size"),
    (("--d-widths", "a,b"), "--d-widths"),
])
def test_invalid_values_are_clear_errors(argv, match):
    with pytest.raises(ConfigError, match=match):
        resolve(_args("--preset", "tiny", *argv))


def test_workload_id_is_stable_and_tracks_the_work():
    tiny = resolve(_args("--preset", "tiny"))
    assert tiny.workload(1000) == resolve(_args("--preset", "tiny")).workload(1000)
    assert tiny.workload(1000).startswith("esrgan-tiny-64x64-b4-n1000-")
    assert tiny.workload(1000) != tiny.workload(999)
    assert tiny.workload(1000) != resolve(_args("--preset", "tiny", "--filters", "8")).workload(1000)
    assert tiny.workload(1000) != resolve(_args("--preset", "tiny", "--batch-size", "2")).workload(1000)
    # what does not change the work does not change the id
    assert tiny.workload(1000) == resolve(_args("--preset", "tiny", "--sample-interval", "7")).workload(1000)
    assert tiny.workload(1000) == resolve(_args("--preset", "tiny", "--epochs", "9", "--warmup-batches", "3",
                                                "--lr", "1e-3")).workload(1000)


def test_probe_phase_specs():
    assert parse_probe_phases("warmup:3,adversarial:10") == [("warmup", 3), ("adversarial", 10)]
    assert parse_probe_phases("adversarial:2") == [("adversarial", 2)]
    for bad in ("warmup", "warmup:x", "fancy:3", "warmup:0", "warmup:-1"):
        with pytest.raises(ConfigError):
            parse_probe_phases(bad)
    assert parse_debug_slow("1:0.5") == (1, 0.5)
    assert parse_debug_slow(None) is None


def test_help_lists_the_contract_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--preset", "--data", "--output-dir", "--log-dir", "--checkpoint-dir", "--checkpoint-interval",
                   "--sample-interval", "--node-name", "--instance-type", "--run-id", "--epochs", "--batch-size",
                   "--hr-height", "--hr-width", "--max-iterations", "--probe-phases", "--vgg-weights",
                   "--threads", "--seed"):
        assert option in text
    assert "--debug-slow-rank" not in text


def test_dist_env_from_torchrun_variables():
    from paramount_trainer.distributed import DistEnv

    assert not DistEnv.from_environ({}).distributed
    env = DistEnv.from_environ({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                "GROUP_WORLD_SIZE": "4"})
    assert (env.distributed, env.rank, env.world_size, env.local_rank, env.nodes) == (True, 5, 8, 1, 4)
    env = DistEnv.from_environ({"RANK": "0", "WORLD_SIZE": "6", "LOCAL_WORLD_SIZE": "2"})
    assert env.nodes == 3


def test_ddp_buffer_sync_option_is_feature_detected():
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    from paramount_trainer.distributed import ddp_kwargs

    kwargs = ddp_kwargs()
    assert list(kwargs.values()) == [False]
    assert next(iter(kwargs)) in inspect.signature(DDP.__init__).parameters


def test_the_run_config_resolves_every_option_the_trainer_reads(monkeypatch):
    from paramount_trainer.config import RunConfig, resolve_run

    monkeypatch.setenv("PARAMOUNT_INSTANCE_TYPE", "m5.large")
    config = resolve_run(_args("--preset", "tiny", "--data", "d", "--output-dir", "out", "--keep-checkpoints", "3"))
    assert isinstance(config, RunConfig) and config.training == resolve(_args("--preset", "tiny"))
    assert (config.data, config.output_dir, config.instance_type) == ("d", "out", "m5.large")
    assert config.checkpoint_dir == "out/checkpoints" and config.checkpointing and config.keep_checkpoints == 3
    assert (config.probe_plan, config.max_iterations, config.window_seconds) == ((), 0, 0.0)
    assert resolve_run(_args("--instance-type", "c5.xlarge", "--no-checkpoint")).instance_type == "c5.xlarge"
    assert not resolve_run(_args("--no-checkpoint")).checkpointing


def test_a_probe_plan_bounds_the_iterations_and_never_checkpoints():
    from paramount_trainer.config import resolve_run

    probe = resolve_run(_args("--probe-phases", "warmup:3,adversarial:10", "--probe-window", "2"))
    assert probe.probe_plan == (("warmup", 3), ("adversarial", 10)) and probe.probe_phases == "warmup:3,adversarial:10"
    assert (probe.max_iterations, probe.window_seconds, probe.checkpointing) == (13, 2.0, False)
    assert resolve_run(_args("--probe-phases", "warmup:3,adversarial:10", "--max-iterations", "5")).max_iterations == 5
    assert resolve_run(_args("--max-iterations", "5", "--probe-window", "2")).window_seconds == 0.0
    with pytest.raises(ConfigError, match="--probe-phases"):
        resolve_run(_args("--probe-phases", "fancy:3"))


@pytest.mark.parametrize("argv,status,code", [
    (("--elastic",), "stopped", 3),             # an elastic worker stopped before the job was done
    (("--elastic",), "completed", 0),
    ((), "stopped", 0),                          # without --elastic a stop ends the job
    (("--elastic", "--max-iterations", "4"), "stopped", 0),          # a probe's stop is its end
    (("--elastic", "--probe-phases", "warmup:1"), "stopped", 0),
])
def test_only_an_unfinished_elastic_stop_exits_3(argv, status, code):
    from paramount_trainer.config import resolve_run
    from paramount_trainer.distributed import EXIT_UNFINISHED, elastic_exit_code

    assert EXIT_UNFINISHED == 3
    assert elastic_exit_code(resolve_run(_args(*argv)), status) == code
