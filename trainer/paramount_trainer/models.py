"""ESRGAN models as in eriklindernoren/PyTorch-GAN ``implementations/esrgan/models.py``.

Module and attribute names are kept, so state dicts of the original load into these classes. Deliberate
properties of the original that are kept (they define the measured workload): growth channels equal to
``filters``, LeakyReLU slope 0.01 in the generator, PixelShuffle upsampling.
"""
import torch
from torch import nn

# ImageNet statistics used by the original's Normalize and by torchvision's VGG weights.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# torchvision.models.vgg.cfgs["E"] (VGG19); copied so building a prefix does not construct the whole network.
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class DenseResidualBlock(nn.Module):
    """The core module of the Residual in Residual Dense Block."""

    def __init__(self, filters, res_scale=0.2):
        super().__init__()
        self.res_scale = res_scale

        def block(in_features, non_linearity=True):
            layers = [nn.Conv2d(in_features, filters, 3, 1, 1, bias=True)]
            if non_linearity:
                layers += [nn.LeakyReLU()]
            return nn.Sequential(*layers)

        self.b1 = block(in_features=1 * filters)
        self.b2 = block(in_features=2 * filters)
        self.b3 = block(in_features=3 * filters)
        self.b4 = block(in_features=4 * filters)
        self.b5 = block(in_features=5 * filters, non_linearity=False)
        self.blocks = [self.b1, self.b2, self.b3, self.b4, self.b5]

    def forward(self, x):
        inputs = x
        out = x
        for block in self.blocks:
            out = block(inputs)
            inputs = torch.cat([inputs, out], 1)
        return out.mul(self.res_scale) + x


class ResidualInResidualDenseBlock(nn.Module):
    def __init__(self, filters, res_scale=0.2):
        super().__init__()
        self.res_scale = res_scale
        self.dense_blocks = nn.Sequential(
            DenseResidualBlock(filters), DenseResidualBlock(filters), DenseResidualBlock(filters)
        )

    def forward(self, x):
        return self.dense_blocks(x).mul(self.res_scale) + x


class GeneratorRRDB(nn.Module):
    def __init__(self, channels=3, filters=64, num_res_blocks=16, num_upsample=2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, filters, kernel_size=3, stride=1, padding=1)
        self.res_blocks = nn.Sequential(*[ResidualInResidualDenseBlock(filters) for _block in range(num_res_blocks)])
        self.conv2 = nn.Conv2d(filters, filters, kernel_size=3, stride=1, padding=1)
        upsample_layers = []
        for _upsample in range(num_upsample):
            upsample_layers += [
                nn.Conv2d(filters, filters * 4, kernel_size=3, stride=1, padding=1),
                nn.LeakyReLU(),
                nn.PixelShuffle(upscale_factor=2),
            ]
        self.upsampling = nn.Sequential(*upsample_layers)
        self.conv3 = nn.Sequential(
            nn.Conv2d(filters, filters, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(filters, channels, kernel_size=3, stride=1, padding=1),
        )

    def forward(self, x):
        out1 = self.conv1(x)
        out = self.res_blocks(out1)
        out2 = self.conv2(out)
        out = torch.add(out1, out2)
        out = self.upsampling(out)
        return self.conv3(out)


class Discriminator(nn.Module):
    """VGG-style discriminator; outputs a patch map of shape (1, H/16, W/16) for 4 stages."""

    def __init__(self, input_shape, widths=(64, 128, 256, 512)):
        super().__init__()
        self.input_shape = input_shape
        in_channels, in_height, in_width = self.input_shape
        patch_h, patch_w = int(in_height / 2 ** len(widths)), int(in_width / 2 ** len(widths))
        self.output_shape = (1, patch_h, patch_w)

        def discriminator_block(in_filters, out_filters, first_block=False):
            layers = [nn.Conv2d(in_filters, out_filters, kernel_size=3, stride=1, padding=1)]
            if not first_block:
                layers.append(nn.BatchNorm2d(out_filters))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            layers.append(nn.Conv2d(out_filters, out_filters, kernel_size=3, stride=2, padding=1))
            layers.append(nn.BatchNorm2d(out_filters))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        layers = []
        in_filters = in_channels
        for i, out_filters in enumerate(widths):
            layers.extend(discriminator_block(in_filters, out_filters, first_block=(i == 0)))
            in_filters = out_filters
        layers.append(nn.Conv2d(in_filters, 1, kernel_size=3, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, img):
        return self.model(img)


def vgg19_features_prefix(num_layers):
    """The first ``num_layers`` modules of torchvision's ``vgg19().features`` (same indices, same init).

    Initialised like torchvision's VGG (``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, zero
    biases); building only the prefix avoids allocating the 140M-parameter full network (2.4 s, 550 MB).
    """
    layers = []
    in_channels = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
        if len(layers) >= num_layers:
            break
    layers = layers[:num_layers]
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
    return nn.Sequential(*layers)


class FeatureExtractor(nn.Module):
    """VGG19 features up to ``num_layers`` (35: conv5_4 before its ReLU, as the ESRGAN paper), frozen."""

    def __init__(self, num_layers=35, features=None):
        super().__init__()
        if features is None:
            features = vgg19_features_prefix(num_layers)
        self.vgg19_54 = nn.Sequential(*list(features.children())[:num_layers])
        # The original never froze it; freezing changes nothing in the result and saves memory and time.
        self.requires_grad_(False)
        self.eval()

    def train(self, mode=True):  # stays in eval mode (it has no BN/dropout, but be explicit)
        return super().train(False)

    def forward(self, img):
        return self.vgg19_54(img)


def load_vgg_features(num_layers, weights):
    """Build the frozen feature extractor. ``weights``: ``none`` (torchvision's init, seeded by the caller),
    ``imagenet`` (torchvision's IMAGENET1K_V1, downloaded on first use) or a path to a torchvision-format
    state dict (keys ``features.N.weight``/``features.N.bias``, or ``N.weight``)."""
    from .errors import ConfigError

    if weights in (None, "none"):
        return FeatureExtractor(num_layers)
    if weights == "imagenet":
        import torchvision

        try:
            model = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1)
        except Exception as exc:  # no network, no cache
            raise ConfigError(f"--vgg-weights imagenet: cannot load torchvision's VGG19 ImageNet weights "
                              f"({type(exc).__name__}: {exc}); use --vgg-weights none or a path") from exc
        return FeatureExtractor(num_layers, features=model.features)
    import os

    if not os.path.isfile(weights):
        raise ConfigError(f"--vgg-weights: no such file {weights!r} (expected none, imagenet or a path)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"--vgg-weights: cannot read {weights!r}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    features = vgg19_features_prefix(num_layers)
    wanted = features.state_dict()
    picked = {}
    for key in wanted:
        for candidate in (f"features.{key}", key, f"vgg19_54.{key}"):
            if candidate in state:
                picked[key] = state[candidate]
                break
    missing = sorted(set(wanted) - set(picked))
    if missing:
        raise ConfigError(f"--vgg-weights {weights!r} lacks VGG19 feature tensors {missing[:4]}"
                          f"{' ...' if len(missing) > 4 else ''}")
    try:
        features.load_state_dict(picked)
    except RuntimeError as exc:
        raise ConfigError(f"--vgg-weights {weights!r} does not fit VGG19: {exc}") from exc
    return FeatureExtractor(num_layers, features=features)


def denormalize(tensors):
    """Map ImageNet-normalised images back to [0, 1] (the original clamped to 0..255, PyTorch-GAN #198)."""
    mean = torch.tensor(MEAN, device=tensors.device, dtype=tensors.dtype).view(1, -1, 1, 1)
    std = torch.tensor(STD, device=tensors.device, dtype=tensors.dtype).view(1, -1, 1, 1)
    return (tensors * std + mean).clamp(0.0, 1.0)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())
