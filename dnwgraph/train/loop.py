"""The training loop behind ``dnwgraph train``: optimizers, schedules, metrics, checkpoints,
resume.

A run is a directory (its layout is owned by :mod:`dnwgraph.runs.rundir`)::

    DIR/config.yaml        the resolved config
    DIR/init.pt            the model's state dict at initialisation (for lottery tickets)
    DIR/checkpoint.pt      written after every epoch, with a checksum (see checkpoint.py)
    DIR/metrics.csv        one row per epoch (columns in metrics.COLUMNS)
    DIR/wiring/epoch_NNNN.pt  wiring snapshots (epoch 0 = at initialisation)
    DIR/tensorboard/       with train.tensorboard=true

Every file is written atomically (:mod:`dnwgraph._atomic`); the folder itself appears with its
``config.yaml`` already inside, so a run killed at any moment can be resumed.

Determinism: the data order of epoch ``e`` is a function of ``(seed, e)`` (the sampler's
``set_epoch``), augmentation draws from a generator seeded with ``(seed, e, rank)``, and the
global RNG states are saved with every checkpoint.  Resuming re-runs the interrupted epoch
from the end of the previous one, so on CPU a resumed run ends with exactly the weights and
wiring of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dnwgraph._atomic import remove_stale_tmp
from dnwgraph.errors import DNWGraphError, NonFiniteError
from dnwgraph.runs.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    rng_state,
    safe_torch_load,
    save_checkpoint,
    set_rng_state,
)
from dnwgraph.runs.run import Run, save_tensors, snapshot_name, write_metrics_csv
from dnwgraph.runs.rundir import (
    CHECKPOINT,
    INIT,
    METRICS,
    WIRING,
    RunExistsError,
    check_new_run,
    clear_outputs,
    start_run,
)
from dnwgraph.train.config import ConfigError, resolve_config
from dnwgraph.train.datasets import ArrayDataset, DataSplits, create_dataset, dataset_options
from dnwgraph.train.distributed import DistEnv
from dnwgraph.train.metrics import (
    TensorBoardLogger,
    wiring_convs,
    wiring_snapshot,
    wiring_stats,
)
from dnwgraph.train.optim import (
    Callback,
    build_optimizer,
    build_scheduler,
    steps_per_iteration,
)
from dnwgraph.typing import PathLikeStr

__all__ = ["train", "RunExistsError", "TrainingDiverged"]

#: the library's log; silence or redirect it with ``logging.getLogger("dnwgraph")``
logger = logging.getLogger(__name__)

_BASE_KEYS = ("name", "dir", "batch_size", "test_batch_size", "augment", "num_workers")


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device must be 'cpu', 'cuda[:N]' or 'auto' (got {name!r})"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available")
    return device


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _model_kwargs(name: str, kwargs: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """``kwargs`` with ``num_classes`` from the data when the factory takes it and it is unset."""
    import inspect

    from dnwgraph.models.registry import MODELS

    factory = MODELS.find(name)
    out = dict(kwargs)
    if factory is not None and "num_classes" in inspect.signature(factory).parameters:
        out.setdefault("num_classes", num_classes)
    return out


def _check_compatible(model: nn.Module, result: Any, source: Path) -> None:
    """Only selection buffers (masks) may differ between a source run and a fixed-mask model."""
    bad = [
        k
        for k in (*result.missing_keys, *result.unexpected_keys)
        if ".selection." not in k and not k.startswith("selection.")
    ]
    if bad:
        raise ConfigError(
            f"init.from_run={str(source)!r} holds a different model (state-dict keys {bad[:5]} "
            f"do not match); use a run of the same model"
        )


def _apply_init(model: nn.Module, init: dict[str, Any]) -> None:
    """Fine-tune (trained weights, frozen top-k mask) or lottery (mask of the trained weights,
    weights reset to the source run's initialisation)."""
    source = Path(init["from_run"])
    state = load_checkpoint(source)
    try:
        result = model.load_state_dict(state["model_state"], strict=False)
    except RuntimeError as err:
        raise ConfigError(
            f"init.from_run={str(source)!r} does not fit this model: {str(err).splitlines()[0]}"
        ) from None
    _check_compatible(model, result, source)
    convs = wiring_convs(model)
    if not convs:
        raise ConfigError("init.mode needs a model with at least one WiringConv")
    for name, conv in convs.items():
        if not hasattr(conv.selection, "freeze"):
            raise ConfigError(
                f"init.mode needs selection 'fixed' ({name} uses {conv.selection.name!r})"
            )
        conv.selection.freeze(conv.edge_weight.detach())
    if init["mode"] == "lottery":
        init_path = source / "init.pt"
        if not init_path.is_file():
            raise CheckpointError(
                f"init.mode='lottery' needs {str(init_path)!r} (the source run's initial weights)"
            )
        init_state = safe_torch_load(init_path, "initial weights")
        if not isinstance(init_state, dict):
            raise CheckpointError(
                f"{str(init_path)!r} holds no state dict (got {type(init_state).__name__})"
            )
        init_state = {k: v for k, v in init_state.items() if ".selection." not in k}
        _check_compatible(model, model.load_state_dict(init_state, strict=False), source)


def _batches(
    dataset: Any,
    indices: list[int],
    batch_size: int,
    generator: torch.Generator | None,
    num_workers: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(dataset, ArrayDataset):
        for start in range(0, len(indices), batch_size):
            yield dataset.batch(torch.tensor(indices[start : start + batch_size]), generator)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=False,
    )
    yield from loader


def _first_difference(a: Any, b: Any, key: str = "") -> str | None:
    """The dotted key of the first value that differs between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if k not in a or k not in b:
                return sub
            found = _first_difference(a[k], b[k], sub)
            if found is not None:
                return found
        return None
    return None if a == b else key


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part, "<missing>") if isinstance(node, dict) else "<missing>"
    return node


def _resume_state(out: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The config and checkpoint to continue the run in ``out`` from; the checkpoint must
    belong to the run's ``config.yaml``."""
    if not out.is_dir():
        raise CheckpointError(f"cannot resume: {str(out)!r} is not a run directory")
    run = Run(out)
    has_config = run.config_path.is_file()
    if (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out)
        if has_config:
            try:
                saved = resolve_config(run.config())
            except DNWGraphError:
                saved = None  # damaged: the checkpoint's own config is authoritative
            theirs = resolve_config(ckpt["config"])
            diff = None if saved is None else _first_difference(saved, theirs)
            if saved is not None and diff is not None:
                raise CheckpointError(
                    f"cannot resume {str(out)!r}: its checkpoint.pt does not belong to its "
                    f"config.yaml ({diff} is {_get(theirs, diff)!r} in the checkpoint but "
                    f"{_get(saved, diff)!r} in config.yaml); restore the run's own checkpoint, "
                    "or start the run again with --overwrite"
                )
        return ckpt["config"], ckpt
    if has_config:  # stopped before the first epoch ended
        try:
            return run.config(), None
        except DNWGraphError as err:
            raise ConfigError(f"cannot resume {str(out)!r}: {err}") from None
    raise CheckpointError(
        f"cannot resume: {str(out)!r} holds no run (neither {CHECKPOINT} nor "
        f"{run.config_path.name}); start one with dnwgraph train --config FILE --out DIR"
    )


def _check_finite(model: nn.Module, epoch: int, out: Path) -> None:
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            raise TrainingDiverged(
                f"the parameter {name} holds NaN or infinite values after epoch {epoch}; "
                f"{_kept(epoch, out)}. Lower optim.lr or set optim.grad_clip."
            )


def _kept(epoch: int, out: Path) -> str:
    last = epoch - 1
    if last > 0:
        return f"the last good checkpoint (epoch {last}) is kept in {str(out)!r}"
    return "no checkpoint was written yet"


def train(
    config: dict[str, Any] | None,
    out_dir: PathLikeStr,
    *,
    resume: bool = False,
    overwrite: bool = False,
    env: DistEnv | None = None,
    progress: bool = True,
    model: nn.Module | None = None,
    dataset: DataSplits | tuple[Any, Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train the configured model and write the run directory (layout in the module doc).

    Progress goes to the ``dnwgraph`` logger (one INFO record per epoch) and, with
    ``progress=True``, to a tqdm bar.

    Args:
        config (dict): a config (see :mod:`dnwgraph.train.config`; ``{}`` for the defaults);
            resolved and checked here.  Ignored when resuming (the run's saved config is used;
            ``None`` is accepted then).
        out_dir (path): the run directory: missing, empty, or (with ``overwrite``) a run.
        resume (bool, optional): continue the run in ``out_dir`` from its checkpoint (or start
            it again with its saved config if it was stopped before the first checkpoint).
        overwrite (bool, optional): replace the run in ``out_dir``; only a folder that is
            recognisably a dnwgraph run is replaced (:func:`~dnwgraph.runs.rundir.check_new_run`).
        env (DistEnv, optional): process topology; default: one process on ``train.device``.
        progress (bool, optional): a tqdm bar per epoch (when stderr is a terminal) and one
            line per epoch. (default: ``True``)
        model (nn.Module, optional): train this model instead of ``model.name`` of the config
            (a model built by ``create_model`` records its name; another one is saved as
            ``<ClassName>``, which :func:`~dnwgraph.load_model` cannot rebuild: pass the model
            again to resume, or use ``load_state_dict``). (default: ``None``)
        dataset (DataSplits or (train, test), optional): train on these datasets of
            ``(x, y)`` pairs instead of ``data.name`` (the ``data`` batch sizes still apply; for
            a pair, the number of classes is ``1 + max`` training label). (default: ``None``)
        callbacks (sequence of Callback, optional): hooks called on the main process.

    Returns:
        dict: ``{"run_dir", "history" (list of metric rows), "params", "epochs"}``.

    Raises:
        ConfigError: ``config`` not a dict, bad config values or an unusable
            ``init.from_run``.
        DataError: an unknown dataset or option, missing or malformed data files.
        CheckpointError: a corrupt checkpoint, or one that does not belong to the run's
            ``config.yaml``, when resuming.
        RunExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``overwrite``.
        DNWGraphError: ``out_dir`` is a file, not writable, holds files that are not a run,
            or is protected from ``overwrite``.
        TrainingDiverged: the loss or the weights became NaN/inf (the last good checkpoint
            is kept).

    Examples:
        >>> cfg = {"train": {"epochs": 1}, "data": {"num_samples": 200}}  # doctest: +SKIP
        >>> train(cfg, "runs/doc")["history"][-1]["test_acc"]  # doctest: +SKIP
        0.31
    """
    out = Path(out_dir)
    ckpt: dict[str, Any] | None = None
    if resume:
        config, ckpt = _resume_state(out)
    elif not isinstance(config, dict):
        raise ConfigError(
            f"'config' must be a dict of config sections (got {type(config).__name__}); pass "
            "{} for the defaults"
        )
    cfg = resolve_config(config)
    device = _device(cfg["train"]["device"])
    # one process, or the process group torchrun / `dnwgraph train --nproc` set up
    env = env or DistEnv.from_environment(device)
    device = env.device
    if env.is_main and not resume:
        check_new_run(out, overwrite)  # before any work: refuse a folder it must not touch

    seed = cfg["train"]["seed"]
    _seed_all(seed)
    data_cfg = cfg["data"]
    if dataset is not None:
        splits = _as_splits(dataset, need_classes=model is None)
    else:
        extra = {k: v for k, v in data_cfg.items() if k not in _BASE_KEYS}
        allowed = dataset_options(data_cfg["name"])
        unknown = sorted(set(extra) - set(allowed))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {['data.' + k for k in unknown]}; data {data_cfg['name']!r} "
                f"takes {sorted([*_BASE_KEYS, *allowed])}"
            )
        splits = create_dataset(
            data_cfg["name"], dir=data_cfg["dir"], augment=data_cfg["augment"], **extra
        )

    from dnwgraph.models import count_params, create_model

    if model is not None:
        spec = getattr(model, "model_spec", None) or {}
        cfg["model"]["name"] = spec.get("name") or f"<{type(model).__name__}>"
        kwargs = dict(spec.get("kwargs") or {})
        cfg["model"]["kwargs"] = kwargs
    else:
        kwargs = _model_kwargs(cfg["model"]["name"], cfg["model"]["kwargs"], splits.num_classes)
        cfg["model"]["kwargs"] = kwargs
        try:
            model = create_model(cfg["model"]["name"], **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model: {err}") from None
    if cfg["init"]["mode"] is not None and ckpt is None:
        _apply_init(model, cfg["init"])
    model.to(device)
    if env.is_main:
        if resume:
            remove_stale_tmp(out)  # what a killed writer left
        if ckpt is None:

            def write_config(folder: Path) -> None:
                Run(folder).write_config(cfg)

            if resume:  # restart from the saved config: nothing of the old attempt survives
                clear_outputs(out, keep_config=True, tools=False)
                write_config(out)
            else:
                start_run(out, write_config, overwrite)
            save_tensors(out / INIT, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    env.barrier()

    try:
        optimizer = build_optimizer(model.parameters(), cfg["optim"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    net = env.wrap(model)
    batch = data_cfg["batch_size"] // env.world_size
    if batch < 1:
        raise ConfigError(
            f"data.batch_size={data_cfg['batch_size']} is smaller than the {env.world_size} "
            f"processes"
        )
    train_sampler = env.sampler(splits.train, shuffle=True, seed=seed)
    test_sampler = env.sampler(splits.test, shuffle=False, seed=seed)
    steps_per_epoch = math.ceil(len(train_sampler) / batch)
    epochs = cfg["train"]["epochs"]
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg["train"]["label_smoothing"])
    history: list[dict[str, Any]] = []
    start_epoch, step = 1, 0
    try:
        scheduler = build_scheduler(optimizer, cfg["schedule"], steps_per_epoch, epochs)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            scheduler.load_state_dict(ckpt["scheduler_state"]["state"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointError(
                f"checkpoint in {str(out)!r} does not fit its config: {str(err).splitlines()[0]}"
            ) from None
        start_epoch, step = int(ckpt["epoch"]) + 1, int(ckpt["step"])
        history = [dict(r) for r in ckpt.get("history", [])]
        set_rng_state(ckpt["rng"])

    model.eval()
    _, prev_masks = wiring_stats(model)
    if env.is_main and cfg["train"]["snapshots"]:
        # epoch 0 for a new run; for a resumed one, the checkpoint's epoch if it is missing
        done = 0 if ckpt is None else start_epoch - 1
        snap = out / snapshot_name(done)
        if ckpt is None or not snap.is_file():
            (out / WIRING).mkdir(exist_ok=True)
            save_tensors(snap, wiring_snapshot(model))
    if env.is_main and ckpt is not None:
        write_metrics_csv(out / METRICS, history)  # deleted, or one row behind the checkpoint
    tb = TensorBoardLogger(out / "tensorboard", cfg["train"]["tensorboard"] and env.is_main)
    params = count_params(model)
    if env.is_main:
        for cb in callbacks:
            cb.on_train_begin(model, cfg)

    try:
        for epoch in range(start_epoch, epochs + 1):
            t0 = time.perf_counter()
            try:
                train_loss, train_acc, step, lr = _train_epoch(
                    net,
                    splits.train,
                    train_sampler,
                    optimizer,
                    criterion,
                    cfg,
                    env,
                    epoch=epoch,
                    step=step,
                    batch=batch,
                    steps_per_epoch=steps_per_epoch,
                    progress=progress and env.is_main,
                    out=out,
                    scheduler=scheduler,
                )
                test_loss, test_acc = _evaluate(
                    net, splits.test, test_sampler, env, cfg["data"]["test_batch_size"]
                )
            except NonFiniteError as err:
                raise TrainingDiverged(
                    f"epoch {epoch}: {err}; {_kept(epoch, out)}. Lower optim.lr or set "
                    "optim.grad_clip."
                ) from None
            if not steps_per_iteration(cfg["schedule"]):
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(test_loss)
                else:
                    scheduler.step()
            _check_finite(model, epoch, out)
            model.eval()
            stats, prev_masks = wiring_stats(model, prev_masks)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": lr,
                **stats,
                "epoch_time_s": time.perf_counter() - t0,
            }
            history.append(row)
            if env.is_main:
                if cfg["train"]["snapshots"]:
                    (out / WIRING).mkdir(exist_ok=True)
                    save_tensors(out / snapshot_name(epoch), wiring_snapshot(model))
                save_checkpoint(
                    out / CHECKPOINT,
                    {
                        "format": FORMAT,
                        "model": {"name": cfg["model"]["name"], "kwargs": kwargs},
                        "model_state": model.state_dict(),
                        "optimizer_state": optimizer.state_dict(),
                        "scheduler_state": {
                            "name": cfg["schedule"]["name"],
                            "step": step,
                            "steps_per_epoch": steps_per_epoch,
                            "state": scheduler.state_dict(),
                        },
                        "epoch": epoch,
                        "step": step,
                        "rng": rng_state(),
                        "config": cfg,
                        "history": history,
                    },
                )
                write_metrics_csv(out / METRICS, history)
                tb.log(row)
                logger.info(_format_row(row, epochs))
                if progress:
                    _print_row(row, epochs)
                for cb in callbacks:
                    cb.on_epoch_end(row, model)
            env.barrier()
    finally:
        tb.close()
    if env.is_main:
        for cb in callbacks:
            cb.on_train_end(history)
    return {"run_dir": out, "history": history, "params": params, "epochs": epochs}


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _format_row(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  "
        f"train {100 * row['train_acc']:.2f}%  test {100 * row['test_acc']:.2f}%  "
        f"lr {row['lr']:.4g}  edges {row['selected_edges']}  "
        f"swapped {row['swapped_in']}  ({row['epoch_time_s']:.1f}s)"
    )


def _print_row(row: dict[str, Any], epochs: int) -> None:
    from tqdm.auto import tqdm

    tqdm.write(_format_row(row, epochs))


def _as_splits(dataset: Any, need_classes: bool) -> DataSplits:
    """A user's dataset object as :class:`DataSplits` (a ``(train, test)`` pair is wrapped)."""
    if isinstance(dataset, DataSplits):
        return dataset
    if not (isinstance(dataset, (tuple, list)) and len(dataset) == 2):
        raise ConfigError(
            "'dataset' must be a DataSplits or a (train, test) pair of datasets "
            f"(got {type(dataset).__name__})"
        )
    train_set, test_set = dataset
    x, _ = train_set[0]
    num_classes = 0
    if need_classes:  # only a registered model needs it, to size its head
        num_classes = 1 + max(int(train_set[i][1]) for i in range(len(train_set)))
    return DataSplits(train_set, test_set, num_classes, tuple(torch.as_tensor(x).shape))


def _train_epoch(
    net: nn.Module,
    dataset: Any,
    sampler: Any,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    cfg: dict[str, Any],
    env: DistEnv,
    *,
    epoch: int,
    step: int,
    batch: int,
    steps_per_epoch: int,
    progress: bool,
    out: Path,
    scheduler: Any,
) -> tuple[float, float, int, float]:
    from tqdm.auto import tqdm

    seed = cfg["train"]["seed"]
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    indices = list(iter(sampler))
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 9_973 + env.rank)
    epochs = cfg["train"]["epochs"]
    per_step = steps_per_iteration(cfg["schedule"])
    net.train()
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    lr = optimizer.param_groups[0]["lr"]
    bar = tqdm(
        total=steps_per_epoch,
        desc=f"epoch {epoch}/{epochs}",
        # a bar redraws itself with carriage returns: in a log file it is noise
        disable=not progress or not _is_terminal(sys.stderr),
        leave=False,
        dynamic_ncols=True,
    )
    for i, (x, y) in enumerate(_batches(dataset, indices, batch, gen, cfg["data"]["num_workers"])):
        lr = optimizer.param_groups[0]["lr"]
        x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
        logits = net(x)
        loss = criterion(logits, y)
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDiverged(
                f"the training loss became {loss.item()} at epoch {epoch}, step {step} "
                f"(lr {lr:.4g}); {_kept(epoch, out)}. Lower optim.lr or check the data."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["optim"]["grad_clip"] is not None:
            # DNW's straight-through gradients into weakly driven InstanceNorm nodes can be
            # huge (docs/training.md); gradients are already all-reduced, so every rank clips alike
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg["optim"]["grad_clip"])
        optimizer.step()
        if per_step:
            scheduler.step()
        step += 1
        with torch.no_grad():
            n = y.numel()
            sums += torch.tensor(
                [loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64
            )
        if progress and (i % 10 == 0 or i == steps_per_epoch - 1):
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.3f}")
        bar.update(1)
    bar.close()
    sums = env.all_reduce_sum(sums.to(env.device)).cpu()
    return float(sums[0] / sums[2]), float(sums[1] / sums[2]), step, lr


@torch.no_grad()
def _evaluate(
    net: nn.Module, dataset: Any, sampler: Any, env: DistEnv, batch: int
) -> tuple[float, float]:
    net.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for x, y in _batches(dataset, list(iter(sampler)), batch, None, 0):
        x, y = x.to(env.device), y.to(env.device)
        logits = net(x)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        sums += torch.tensor(
            [loss.item(), (logits.argmax(1) == y).sum().item(), y.numel()], dtype=torch.float64
        )
    sums = env.all_reduce_sum(sums.to(env.device)).cpu()
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])
