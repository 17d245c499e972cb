"""What the :class:`~paramount_trainer.trainer.Trainer` receives, built from the resolved configuration: the data
(training split, sampler, loader; the hold-out split), the models (G, D, the frozen VGG) and their optimisers.

As pytorch/examples' DDP tutorial (``load_train_objs``/``prepare_dataloader``); every builder runs on every rank
and, through :meth:`Collectives.agreed`, fails on every rank together when it fails on one (none hangs)."""
import dataclasses

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .data import ImageDataset, ResumableDistributedSampler, check_first_image, list_images, split_holdout
from .errors import TrainerError
from .models import Discriminator, GeneratorRRDB, load_vgg_features


@dataclasses.dataclass
class TrainingData:
    train_set: Dataset
    holdout_set: Dataset
    sampler: DistributedSampler   # a ResumableDistributedSampler: the Trainer starts epochs part-way with it
    loader: DataLoader


@dataclasses.dataclass
class EsrganModels:
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    vgg: torch.nn.Module          # frozen content-loss features, not in DDP


@dataclasses.dataclass
class EsrganOptimizers:
    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer


def build_data(config, env, device):
    """The image folder split into training and hold-out sets; this rank's shard of the training set."""
    hp = config.training
    files = list_images(config.data)
    train_files, holdout_files = split_holdout(files, config.holdout)
    train_set = ImageDataset(train_files, (hp.hr_height, hp.hr_width))
    holdout_set = ImageDataset(holdout_files, (hp.hr_height, hp.hr_width))
    check_first_image(train_set)
    sampler = ResumableDistributedSampler(train_set, env.world_size, env.rank, seed=config.seed)
    loader = DataLoader(train_set, batch_size=hp.batch_size, sampler=sampler, num_workers=hp.n_cpu,
                        pin_memory=device.type == "cuda", drop_last=False)
    return TrainingData(train_set, holdout_set, sampler, loader)


def build_models(config, env, coll, device):
    """G, D and the VGG feature extractor, initialised identically on every rank (the VGG is not wrapped in
    DDP, so it must be built identically). ImageNet weights are downloaded by local rank 0 first."""
    hp = config.training
    torch.manual_seed(config.seed)
    generator = GeneratorRRDB(hp.channels, filters=hp.filters, num_res_blocks=hp.residual_blocks).to(device)
    discriminator = Discriminator((hp.channels, hp.hr_height, hp.hr_width), widths=hp.d_widths).to(device)
    download_first = hp.vgg_weights == "imagenet" and env.distributed
    vgg, error = None, None
    if download_first and env.local_rank != 0:
        coll.barrier()  # local rank 0 downloads the weights into the cache first
    try:
        vgg = load_vgg_features(hp.vgg_layers, hp.vgg_weights)
    except TrainerError as exc:
        error = exc
    if download_first and env.local_rank == 0:
        coll.barrier()
    if error is not None:
        raise error
    return EsrganModels(generator, discriminator, vgg.to(device))


def build_optimizers(config, models):
    """Adam for G and for D, as the original."""
    hp = config.training
    betas = (hp.b1, hp.b2)
    return EsrganOptimizers(torch.optim.Adam(models.generator.parameters(), lr=hp.lr, betas=betas),
                            torch.optim.Adam(models.discriminator.parameters(), lr=hp.lr, betas=betas))
