"""Images, HR/LR pairs, the resumable distributed sampler and the built-in offline data set."""
import hashlib
import importlib.util
import json
import math
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from .errors import DataError
from .models import MEAN, STD

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
#: Seed of the hold-out split: fixed, so the split does not move with --seed.
SPLIT_SEED = 20240601


def list_images(root):
    """Sorted image files directly inside ``root`` (the original globbed ``root/*.*``)."""
    if root is None:
        raise DataError("no data folder given: pass --data DIR (make one with "
                        "`python -m paramount_trainer make-dataset --out DIR`)")
    if not os.path.exists(root):
        raise DataError(f"data folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise DataError(f"data folder {root!r} is not a directory")
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise DataError(f"data folder {root!r} cannot be listed: {exc}") from exc
    files = [os.path.join(root, n) for n in names
             if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(root, n))]
    if not files:
        raise DataError(f"data folder {root!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def split_holdout(files, holdout):
    """Deterministic (train, holdout) split. ``holdout``: a count, or ``None`` for min(32, len // 20)."""
    n = len(files)
    if holdout is None:
        holdout = min(32, n // 20)
    if holdout < 0 or holdout >= n:
        raise DataError(f"--holdout {holdout} leaves no training images out of {n}")
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    held = set(order[:holdout].tolist())
    train = [f for i, f in enumerate(files) if i not in held]
    test = [f for i, f in enumerate(files) if i in held]
    return train, test


def _to_tensor(img):
    arr = np.asarray(img, dtype=np.float32) / 255.0  # HWC RGB
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (t - mean) / std


class ImageDataset(Dataset):
    """HR/LR pairs: bicubic resizes of each image to (hr_height, hr_width) and to a quarter of that, both
    normalised with ImageNet statistics. Fixes of the original: images are converted to RGB (grayscale or RGBA
    files broke Normalize) and the width is honoured (the original used hr_height for both)."""

    def __init__(self, files, hr_shape):
        self.files = list(files)
        self.hr_height, self.hr_width = hr_shape

    def __len__(self):
        return len(self.files)

    def load(self, index):
        path = self.files[index % len(self.files)]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                hr = img.resize((self.hr_width, self.hr_height), Image.BICUBIC)
                lr = img.resize((self.hr_width // 4, self.hr_height // 4), Image.BICUBIC)
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
            raise DataError(f"unreadable image {path!r}: {type(exc).__name__}: {exc}") from None
        return lr, hr

    def __getitem__(self, index):
        lr, hr = self.load(index)
        return {"lr": _to_tensor(lr), "hr": _to_tensor(hr)}


def unwrap_worker_error(exc):
    """A DataError raised in a DataLoader worker comes back with the worker's traceback in its message;
    keep the original message only."""
    text = str(exc)
    marker = "DataError: "
    if "Original Traceback" in text and marker in text:
        return DataError(text.rsplit(marker, 1)[1].strip())
    return exc


def check_first_image(dataset):
    """Fail fast (before building models) when the first image cannot be read."""
    dataset.load(0)


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler (shuffle, no drop) that can start an epoch part-way, counted in global samples.

    The epoch's global order is the permutation DistributedSampler uses (seeded by seed + epoch), padded to a
    multiple of the world size; iteration i of all ranks together consumes positions [i*W*B, (i+1)*W*B) of it
    (rank r takes positions r, r+W, ...). ``set_start(S)`` drops the first S positions, so a run resumed at the
    same world size sees exactly the batches the uninterrupted run would have seen, and at another world size
    it continues with the remaining samples of the epoch (only the padding may repeat earlier samples).
    """

    def __init__(self, dataset, num_replicas, rank, seed=0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start_sample = 0

    def set_start(self, start_sample):
        self.start_sample = int(start_sample)

    def epoch_order(self):
        """This epoch's permutation of the data set (what DistributedSampler uses), unpadded."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def remaining_order(self):
        """The epoch's order from ``start_sample`` on, padded to a multiple of the world size with the head of
        the epoch's order (as DistributedSampler pads). From the start this is DistributedSampler's order; at
        the same world size a resumed tail equals the uninterrupted one's."""
        order = self.epoch_order()
        rest = order[self.start_sample:]
        padding = (-len(rest)) % self.num_replicas
        if padding:
            rest = rest + (order * math.ceil(padding / len(order)))[:padding]
        return rest

    def epoch_positions(self):
        """Value of ``samples_in_epoch`` (start plus the padded remainder) at which this epoch ends."""
        rest = max(0, len(self.dataset) - self.start_sample)
        return self.start_sample + math.ceil(rest / self.num_replicas) * self.num_replicas

    def __iter__(self):
        return iter(self.remaining_order()[self.rank::self.num_replicas])

    def __len__(self):
        return (self.epoch_positions() - self.start_sample) // self.num_replicas


# ---------------------------------------------------------------------------------------------------------
# Built-in offline data set: crops of real photographs shipped in scikit-image (and optionally matplotlib).

#: (name, loader attribute of skimage.data, face box (x0, y0, x1, y1) or None)
SKIMAGE_PHOTOS = (
    ("astronaut", "astronaut", (140, 20, 300, 180)),  # Eileen Collins
    ("chelsea", "chelsea", None),
    ("coffee", "coffee", None),
    ("rocket", "rocket", None),
    ("hubble_deep_field", "hubble_deep_field", None),
    ("immunohistochemistry", "immunohistochemistry", None),
    ("retina", "retina", None),
    ("motorcycle", "stereo_motorcycle", None),
    ("camera", "camera", None),
    ("brick", "brick", None),
    ("grass", "grass", None),
    ("gravel", "gravel", None),
    ("moon", "moon", None),
    ("coins", "coins", None),
)
GRACE_HOPPER_FACE = (150, 40, 390, 280)
FACE_FRACTION = 0.2


def _skimage_photo(attr):
    import skimage.data

    arr = getattr(skimage.data, attr)()
    if isinstance(arr, tuple):  # stereo_motorcycle -> (left, right, disparity)
        arr = arr[0]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def _grace_hopper():
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.origin:
        raise DataError("--sources all needs matplotlib (for mpl-data/sample_data/grace_hopper.jpg)")
    path = os.path.join(os.path.dirname(spec.origin), "mpl-data", "sample_data", "grace_hopper.jpg")
    if not os.path.isfile(path):
        raise DataError(f"matplotlib's sample photo is missing: {path}")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_sources(sources="skimage"):
    """[(name, uint8 HxWx3 array, face box or None)] in a fixed order."""
    if sources not in ("skimage", "all"):
        raise DataError(f"unknown --sources {sources!r}: choose skimage or all")
    photos = [(name, _skimage_photo(attr), face) for name, attr, face in SKIMAGE_PHOTOS]
    if sources == "all":
        photos.append(("grace_hopper", _grace_hopper(), GRACE_HOPPER_FACE))
    return photos


def make_dataset(out, n=1000, size=128, seed=0, sources="skimage"):
    """Write ``n`` deterministic ``size``x``size`` PNG crops of real photos to ``out`` plus ``MANIFEST.json``.

    Each crop: with probability 0.2 a jittered square around the face of a portrait (the astronaut; also Grace
    Hopper with ``sources="all"``), else a photo chosen uniformly and a random square of side
    size..min(2.5*size, photo); then a random horizontal flip and a bicubic resize to ``size``. The same arguments
    and package versions give byte-identical files.
    """
    if n < 1:
        raise DataError(f"-n must be >= 1, got {n}")
    if size < 16:
        raise DataError(f"--size must be >= 16, got {size}")
    photos = load_sources(sources)
    os.makedirs(out, exist_ok=True)
    faces = [p for p in photos if p[2] is not None]
    rng = np.random.default_rng(seed)
    entries = []
    width = max(5, len(str(n - 1)))
    for i in range(n):
        use_face = bool(rng.random() < FACE_FRACTION)
        pool = faces if use_face else photos
        name, arr, face = pool[int(rng.integers(len(pool)))]
        h, w = arr.shape[:2]
        if use_face:
            x0, y0, x1, y1 = face
            side = int(max(x1 - x0, y1 - y0) * rng.uniform(0.9, 1.3))
            side = max(16, min(side, h, w))
            cx = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * side
            cy = (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * side
            left = int(np.clip(round(cx - side / 2), 0, w - side))
            top = int(np.clip(round(cy - side / 2), 0, h - side))
        else:
            lo = min(size, h, w)
            hi = max(lo, min(int(2.5 * size), h, w))
            side = int(rng.integers(lo, hi + 1))
            left = int(rng.integers(0, w - side + 1))
            top = int(rng.integers(0, h - side + 1))
        flip = bool(rng.random() < 0.5)
        crop = arr[top:top + side, left:left + side]
        if flip:
            crop = crop[:, ::-1]
        img = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC)
        fname = f"img_{i:0{width}d}.png"
        img.save(os.path.join(out, fname), format="PNG", optimize=False, compress_level=6)
        entries.append({"file": fname, "source": name, "box": [left, top, side, side], "flip": flip,
                        "face": bool(use_face)})
    manifest = {"generator": "paramount_trainer make-dataset", "n": n, "size": size, "seed": seed,
                "sources": sources, "photos": [p[0] for p in photos], "images": entries}
    manifest["digest"] = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    tmp = os.path.join(out, f".MANIFEST.json.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, os.path.join(out, "MANIFEST.json"))
    return manifest
