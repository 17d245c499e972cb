from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from paramount_trainer.data import (ImageDataset, ResumableDistributedSampler, list_images, split_holdout)
from paramount_trainer.errors import DataError


def test_list_images_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        list_images(str(tmp_path / "file"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("x")
    with pytest.raises(DataError, match=f"{empty}.*no images"):
        list_images(str(empty))
    with pytest.raises(DataError, match="--data"):
        list_images(None)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt", "d.jpeg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.rsplit("/", 1)[1] for p in list_images(str(tmp_path))] == ["a.png", "b.JPG", "d.jpeg"]


def test_grayscale_and_rgba_are_converted_and_width_is_honoured(tmp_path):
    Image.fromarray(np.full((40, 50), 128, np.uint8), "L").save(tmp_path / "g.png")
    Image.fromarray(np.full((40, 50, 4), 200, np.uint8), "RGBA").save(tmp_path / "a.png")
    ds = ImageDataset(sorted(str(p) for p in tmp_path.iterdir()), (32, 64))
    for i in range(2):
        item = ds[i]
        assert item["hr"].shape == (3, 32, 64)
        assert item["lr"].shape == (3, 8, 16)


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    with pytest.raises(DataError, match="unreadable image.*bad.jpg"):
        ImageDataset([str(bad)], (32, 32))[0]


def test_holdout_split_is_deterministic_and_disjoint():
    files = [f"f{i:03d}.png" for i in range(100)]
    train, held = split_holdout(files, None)
    assert len(held) == 5 and len(train) == 95 and not set(train) & set(held)
    assert split_holdout(files, None) == (train, held)
    assert split_holdout(files, 0) == (files, [])
    with pytest.raises(DataError):
        split_holdout(files, 100)


class _Len:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _batches(n, world, batch, epoch, start=0, seed=0):
    """Global batches: per iteration the concatenation of every rank's batch."""
    per_rank = []
    for rank in range(world):
        s = ResumableDistributedSampler(_Len(n), world, rank, seed=seed)
        s.set_epoch(epoch)
        s.set_start(start)
        idx = list(s)
        assert len(idx) == len(s)
        per_rank.append([idx[i:i + batch] for i in range(0, len(idx), batch)])
    assert len({len(b) for b in per_rank}) == 1  # every rank has as many iterations (DDP needs it)
    return [[i for r in range(world) for i in per_rank[r][it]] for it in range(len(per_rank[0]))]


def test_sampler_equals_distributed_sampler_from_the_start():
    from torch.utils.data.distributed import DistributedSampler

    for world in (1, 2, 3):
        for rank in range(world):
            ours = ResumableDistributedSampler(_Len(23), world, rank, seed=5)
            ref = DistributedSampler(_Len(23), num_replicas=world, rank=rank, shuffle=True, seed=5)
            ours.set_epoch(2)
            ref.set_epoch(2)
            assert list(ours) == list(ref) and len(ours) == len(ref)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(4, 60), world=st.integers(1, 4), batch=st.integers(1, 5), stop=st.integers(0, 20),
       world2=st.integers(1, 4), epoch=st.integers(0, 3))
def test_resumed_epoch_sees_the_rest_of_the_epoch(n, world, batch, stop, world2, epoch):
    full = _batches(n, world, batch, epoch)
    stop = min(stop, len(full) - 1)
    consumed = sum(len(b) for b in full[:stop])
    # same world size: exactly the remaining batches of the uninterrupted epoch
    assert _batches(n, world, batch, epoch, start=consumed) == full[stop:]
    # another world size: the remaining samples of the epoch, each exactly once, plus < world2 padding
    rest = [i for b in _batches(n, world2, batch, epoch, start=consumed) for i in b]
    order = ResumableDistributedSampler(_Len(n), world, 0)
    order.set_epoch(epoch)
    remaining = order.epoch_order()[consumed:]
    extra = Counter(rest) - Counter(remaining)
    assert not Counter(remaining) - Counter(rest)  # nothing left out
    assert sum(extra.values()) == len(rest) - len(remaining) < world2  # only the padding comes on top
    assert len(rest) % world2 == 0


def test_sampler_shuffles_differently_per_epoch():
    s = ResumableDistributedSampler(_Len(50), 1, 0)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    assert list(s) != a and sorted(list(s)) == sorted(a)
