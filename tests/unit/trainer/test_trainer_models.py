import pytest
import torch
from torch import nn

from paramount_trainer.models import (Discriminator, FeatureExtractor, GeneratorRRDB, count_parameters,
                                      denormalize, load_vgg_features, vgg19_features_prefix)


@pytest.mark.parametrize("filters,blocks,expected", [
    (16, 1, 128_003), (32, 1, 509_443), (32, 3, 1_339_843), (64, 3, 5_352_323),
])
def test_generator_parameter_counts_match_the_original(filters, blocks, expected):
    assert count_parameters(GeneratorRRDB(3, filters=filters, num_res_blocks=blocks)) == expected


@pytest.mark.slow
def test_paper_generator_parameter_count():
    assert count_parameters(GeneratorRRDB(3, filters=64, num_res_blocks=23)) == 38_549_123


@pytest.mark.parametrize("widths,expected", [
    ((16, 32, 64, 128), 295_601), ((32, 64, 128, 256), 1_176_417), ((64, 128, 256, 512), 4_693_697),
])
def test_discriminator_parameter_counts_match_the_original(widths, expected):
    assert count_parameters(Discriminator((3, 128, 128), widths=widths)) == expected


def test_shapes_x4_and_patch_map_non_square():
    G = GeneratorRRDB(3, filters=8, num_res_blocks=1)
    lr = torch.randn(2, 3, 12, 20)
    assert G(lr).shape == (2, 3, 48, 80)
    D = Discriminator((3, 48, 80), widths=(8, 8, 8, 8))
    assert D(torch.randn(2, 3, 48, 80)).shape == (2, 1, 3, 5) == (2, *D.output_shape)


def test_state_dict_keys_of_the_original_are_kept():
    keys = set(GeneratorRRDB(3, filters=8, num_res_blocks=1).state_dict())
    assert {"conv1.weight", "res_blocks.0.dense_blocks.0.b1.0.weight", "res_blocks.0.dense_blocks.2.b5.0.bias",
            "upsampling.0.weight", "upsampling.3.weight", "conv3.2.weight", "conv2.weight"} <= keys
    assert "model.0.weight" in Discriminator((3, 32, 32), widths=(8, 8, 8, 8)).state_dict()


@pytest.mark.parametrize("layers", [8, 17, 35])
def test_vgg_prefix_matches_torchvision_layout(layers):
    import torchvision

    ours = vgg19_features_prefix(layers)
    theirs = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:layers]
    assert len(ours) == layers
    for a, b in zip(ours, theirs):
        assert type(a) is type(b)
        if isinstance(a, nn.Conv2d):
            assert a.weight.shape == b.weight.shape
    # the cut is a conv output before its ReLU (the ESRGAN choice)
    assert isinstance(ours[-1], nn.Conv2d)


def test_vgg_init_is_torchvision_kaiming_fan_out():
    torch.manual_seed(0)
    f = vgg19_features_prefix(8)
    conv = f[7]  # conv2_2: 128 -> 128, fan_out = 128 * 9
    expected_std = (2.0 / (128 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_feature_extractor_is_frozen_and_stays_in_eval():
    fe = FeatureExtractor(8)
    assert not any(p.requires_grad for p in fe.parameters())
    fe.train()
    assert not fe.training
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    fe(x).sum().backward()  # gradients still flow to the input (the content loss needs them)
    assert x.grad is not None


def test_vgg_weights_from_a_torchvision_format_file(tmp_path):
    torch.manual_seed(1)
    src = vgg19_features_prefix(8)
    path = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in src.state_dict().items()}, path)
    fe = load_vgg_features(8, str(path))
    assert torch.equal(fe.vgg19_54[7].weight, src[7].weight)


def test_vgg_weights_bad_path_is_a_clear_error(tmp_path):
    from paramount_trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="no such file"):
        load_vgg_features(8, str(tmp_path / "missing.pth"))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "partial.pth")
    with pytest.raises(ConfigError, match="lacks VGG19 feature tensors"):
        load_vgg_features(8, str(tmp_path / "partial.pth"))


def test_denormalize_clamps_to_unit_range():
    from paramount_trainer.models import MEAN, STD

    x = torch.tensor([[-100.0, 0.0, 100.0]]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    y = denormalize(x)
    assert y.min().item() == 0.0 and y.max().item() == 1.0
    assert torch.allclose(y[0, :, 0, 1], torch.tensor(MEAN))
    # round trip of in-range values
    img = torch.rand(1, 3, 4, 4)
    norm = (img - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(denormalize(norm), img, atol=1e-6)
