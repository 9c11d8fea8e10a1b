"""The training loop behind ``dnwgraph train``: optimizers, schedules, metrics, checkpoints,
resume.

:func:`train` is a sequence of named steps: prepare the config (:func:`_prepare_config`, which
reads a resumed run's own), build the data and the model, prepare the run directory, build
the optimisation state (:class:`_Session`), restore it from the checkpoint when resuming, run
the epochs.  Every file of the run (its layout: :class:`dnwgraph.runs.Run`) is written through
:mod:`dnwgraph.runs`, atomically (:mod:`dnwgraph._atomic`); the folder itself appears with its
config already inside, so a run killed at any moment can be resumed.

Determinism: the data order of epoch ``e`` is a function of ``(seed, e)`` (the sampler's
``set_epoch``), augmentation draws from a generator seeded with ``(seed, e, rank)``, and the
global RNG states are saved with every checkpoint.  Resuming re-runs the interrupted epoch
from the end of the previous one, so on CPU a resumed run ends with exactly the weights and
wiring of an uninterrupted run.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dnwgraph._version import __version__
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError, NonFiniteError
from dnwgraph.models import count_params, create_model
from dnwgraph.models.migrations import is_newer, migrate_kwargs, warn_if_newer
from dnwgraph.models.registry import MODELS
from dnwgraph.models.state_dict import load_state_dict
from dnwgraph.runs.checkpoint import CheckpointError, built_by, load_checkpoint, set_rng_state
from dnwgraph.runs.lock import RunLock
from dnwgraph.runs.run import ForeignFileError, Run, new_run_id
from dnwgraph.runs.rundir import RunExistsError, check_new_run, remove_stale_run_tmp
from dnwgraph.train.config import (
    ConfigError,
    DataSection,
    ModelSection,
    TrainConfig,
    resolve_config,
)
from dnwgraph.train.datasets import (
    ArrayDataset,
    DataError,
    DataSplits,
    create_dataset,
    dataset_options,
)
from dnwgraph.train.distributed import DistEnv
from dnwgraph.train.init_from_run import apply_init
from dnwgraph.train.metrics import TensorBoardLogger, wiring_snapshot, wiring_stats
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


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class _Session:
    """What the epochs of one run share: built once (:func:`_build_session`), restored from a
    checkpoint (:func:`_restore`), advanced by every epoch."""

    cfg: TrainConfig
    run: Run
    env: DistEnv
    model: nn.Module
    net: nn.Module  # the model, wrapped for distributed training
    splits: DataSplits
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch scheduler (optim.build_scheduler)
    per_step: bool  # the scheduler steps after every optimisation step, not every epoch
    criterion: nn.Module
    train_sampler: Any
    test_sampler: Any
    batch: int  # per process
    steps_per_epoch: int
    progress: bool
    step: int = 0
    start_epoch: int = 1
    resumed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    masks: Any = None  # the selection masks after the last epoch (for swapped_in / _out)
    run_id: str | None = None  # written into each file of the run (main process)
    built_by: str = __version__  # whose defaults built the model (a resumed run: its first)


def train(
    config: TrainConfig | Mapping[str, Any] | None,
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
    """Train the configured model and write the run directory (:class:`dnwgraph.runs.Run`).

    Progress goes to the ``dnwgraph`` logger (one INFO record per epoch) and, with
    ``progress=True``, to a tqdm bar.

    Args:
        config (TrainConfig or dict): a config (:class:`~dnwgraph.train.config.TrainConfig`,
            or a mapping of sections, ``{}`` for the defaults, resolved and checked here).
            Ignored when resuming (the run's saved config is used; ``None`` is accepted then).
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
        ConfigError: ``config`` neither a TrainConfig nor a mapping, bad config values or an
            unusable ``init.from_run``.
        DataError: an unknown dataset or option, missing or malformed data files.
        CheckpointError: a corrupt checkpoint, or one that does not belong to the run's
            config, when resuming.
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
    _check_arguments(out_dir, resume, overwrite, progress, model, env, callbacks)
    run = Run(out_dir)
    lock = RunLock()  # held by the main process while it writes the run
    try:
        cfg, ckpt = _prepare_config(config, run, resume)
        device = _device(cfg.train.device)
        # one process, or the process group torchrun / `dnwgraph train --nproc` set up
        env = env or DistEnv.from_environment(device)
        if env.is_main and resume:
            lock.acquire(run.path)
        elif env.is_main:
            check_new_run(run.path, overwrite)  # before any work: refuse a folder it must not touch
        _seed_all(cfg.train.seed)
        given_model = model
        splits = _build_data(cfg.data, dataset, need_classes=model is None)
        source = _init_source(cfg) if ckpt is None else None
        built = _defaults_version(ckpt or source, given_model)
        cfg, model = _build_model(cfg, model, splits.num_classes, built)
        if source is not None:
            apply_init(model, cfg.init, source)
        model.to(env.device)
        # the optimizer and the schedule refuse a bad value before any file is written
        session = _build_session(cfg, run, env, model, splits, progress)
        session.built_by = built
        if env.is_main:
            start = _Start(resume, overwrite, lock, ckpt, rebuild=given_model is None)
            session.run_id = _prepare_run_dir(run, cfg, model, start)
        env.barrier()
        if ckpt is not None:
            _restore(session, ckpt)
        params = count_params(model)
        _run_epochs(session, callbacks)
    finally:
        lock.release()
    return {
        "run_dir": run.path,
        "history": session.history,
        "params": params,
        "epochs": cfg.train.epochs,
    }


# ------------------------------------------------------------------------ preparing the run


def _check_arguments(
    out_dir: Any,
    resume: Any,
    overwrite: Any,
    progress: Any,
    model: Any,
    env: Any,
    callbacks: Any,
) -> None:
    """The arguments of :func:`train` other than the config, by type (``overwrite="false"``
    must not replace a run)."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise DNWGraphTypeError(f"'out_dir' must be a path (got {type(out_dir).__name__})")
    for name, value in (("resume", resume), ("overwrite", overwrite), ("progress", progress)):
        if not isinstance(value, bool):
            raise DNWGraphTypeError(f"{name!r} must be True or False (got {value!r})")
    if model is not None and not isinstance(model, nn.Module):
        raise DNWGraphTypeError(f"'model' must be an nn.Module (got {type(model).__name__})")
    if env is not None and not isinstance(env, DistEnv):
        raise DNWGraphTypeError(f"'env' must be a DistEnv (got {type(env).__name__})")
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(cb, Callback) for cb in callbacks
    ):
        got = (
            [type(cb).__name__ for cb in callbacks]
            if isinstance(callbacks, (list, tuple))
            else type(callbacks).__name__
        )
        raise DNWGraphTypeError(
            f"'callbacks' must be a list of dnwgraph.train.Callback objects (got {got})"
        )


def _prepare_config(
    config: Any, run: Run, resume: bool
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The checked config, and the checkpoint to continue from (``None`` for a new start)."""
    if resume:
        raw, ckpt = _resume_state(run)
        return resolve_config(raw), ckpt
    if isinstance(config, TrainConfig):
        return config, None
    if not isinstance(config, Mapping):
        raise ConfigError(
            "'config' must be a dict of config sections or a TrainConfig (got "
            f"{type(config).__name__}); pass {{}} for the defaults"
        )
    return resolve_config(config), None


def _resume_state(run: Run) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The config and checkpoint to continue ``run`` from; the checkpoint must belong to the
    run's saved config."""
    out = run.path
    if not out.is_dir():
        raise CheckpointError(f"cannot resume: {str(out)!r} is not a run directory")
    has_config = run.config_path.is_file()
    if run.checkpoint_path.exists():
        ckpt = run.checkpoint()
        if is_newer(built_by(ckpt)):
            raise CheckpointError(
                f"cannot resume {str(out)!r}: dnwgraph {built_by(ckpt)} wrote it, newer than "
                f"this one ({__version__}), whose defaults may build another model; resume it "
                "with that version"
            )
        if has_config:
            _check_belongs(run, ckpt["config"])
            _check_run_id(run, ckpt.get("run_id"))
        return ckpt["config"], ckpt
    if has_config:  # stopped before the first epoch ended
        try:
            return run.config(), None
        except DNWGraphError as err:
            raise ConfigError(f"cannot resume {str(out)!r}: {err}") from None
    raise CheckpointError(
        f"cannot resume: {str(out)!r} holds no run (neither {run.checkpoint_path.name} nor "
        f"{run.config_path.name}); start one with dnwgraph train --config FILE --out DIR"
    )


def _check_belongs(run: Run, theirs_raw: dict[str, Any]) -> None:
    """Refuse a checkpoint whose config differs from the run's saved one (a damaged saved
    config is no evidence: the checkpoint's own config is authoritative then)."""
    try:
        saved = resolve_config(run.config()).to_dict()
    except DNWGraphError:
        return
    theirs = resolve_config(theirs_raw).to_dict()
    diff = _first_difference(saved, theirs)
    if diff is not None:
        ckpt_name, config_name = run.checkpoint_path.name, run.config_path.name
        raise CheckpointError(
            f"cannot resume {str(run.path)!r}: its {ckpt_name} does not belong to its "
            f"{config_name} ({diff} is {_get(theirs, diff)!r} in the checkpoint but "
            f"{_get(saved, diff)!r} in {config_name}); restore the run's own checkpoint, "
            "or start the run again with --overwrite"
        )


def _check_run_id(run: Run, theirs: str | None) -> None:
    """Refuse a checkpoint of another run: its run id differs from the one in
    ``config.yaml`` (a config without one is no evidence)."""
    ours = run.run_id()
    if ours is not None and theirs != ours:
        raise CheckpointError(
            f"cannot resume {str(run.path)!r}: its {run.checkpoint_path.name} belongs to "
            f"another run (run id {theirs!r}, {run.config_path.name} says {ours!r}); restore "
            "the run's own checkpoint, or start the run again with --overwrite"
        )


def _build_data(data: DataSection, dataset: Any, need_classes: bool) -> DataSplits:
    """The user's datasets, or the configured one (its options checked against it)."""
    if dataset is not None:
        return _as_splits(dataset, need_classes=need_classes)
    allowed = dataset_options(data.name)
    unknown = sorted(set(data.options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {['data.' + k for k in unknown]}; data {data.name!r} "
            f"takes {sorted([*DataSection.keys(), *allowed])}"
        )
    return create_dataset(data.name, dir=data.dir, augment=data.augment, **data.options)


def _init_source(cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint of ``init.from_run`` (``None`` without ``init.mode``)."""
    if cfg.init.mode is None:
        return None
    source = load_checkpoint(str(cfg.init.from_run))
    warn_if_newer(built_by(source), f"init.from_run={str(cfg.init.from_run)!r}")
    return source


def _defaults_version(saved: dict[str, Any] | None, given: nn.Module | None) -> str:
    """The version whose defaults build the run's model: a resumed run's first, or that of
    the run it starts from (``init.from_run``: the same model), unless newer than this one;
    this one for a new run and for a model the user built (here, with today's defaults)."""
    if given is not None or saved is None or is_newer(built_by(saved)):
        return __version__
    return built_by(saved)


def _build_model(
    cfg: TrainConfig, model: nn.Module | None, num_classes: int, version: str
) -> tuple[TrainConfig, nn.Module]:
    """The user's model or the configured one, with the defaults of ``version`` (a resumed
    run's first), and the config recording what was built."""
    if model is not None:
        spec = getattr(model, "model_spec", None) or {}
        section = ModelSection(
            name=spec.get("name") or f"<{type(model).__name__}>",
            kwargs=dict(spec.get("kwargs") or {}),
        )
        return replace(cfg, model=section), model
    kwargs = _model_kwargs(cfg.model.name, cfg.model.kwargs, num_classes)
    cfg = replace(cfg, model=replace(cfg.model, kwargs=kwargs))
    try:
        return cfg, create_model(cfg.model.name, **migrate_kwargs(cfg.model.name, kwargs, version))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None


@dataclass(frozen=True)
class _Start:
    """How :func:`train` starts: a new run, or a resumed one and its checkpoint."""

    resume: bool
    overwrite: bool
    lock: RunLock
    ckpt: dict[str, Any] | None
    rebuild: bool  # the model was built from the config: its weights now are init.pt's


def _prepare_run_dir(run: Run, cfg: TrainConfig, model: nn.Module, start: _Start) -> str:
    """Clean what a killed writer left; a fresh start writes the config and ``init`` weights
    (and takes the run's lock); a resumed run's files are checked.  The run id."""
    if not start.resume:
        run_id = new_run_id()
        run.start(cfg.to_dict(), start.overwrite, start.lock, run_id)
        run.save_init(model.state_dict(), run_id)
        return run_id
    remove_stale_run_tmp(run.path)  # what a killed writer left
    if start.ckpt is None:  # restart from the saved config: nothing of the old attempt survives
        run_id = run.run_id() or new_run_id()
        run.restart(cfg.to_dict(), run_id)
        run.save_init(model.state_dict(), run_id)
        return run_id
    run_id = start.ckpt.get("run_id") or run.run_id()
    rebuild = start.rebuild and cfg.init.mode is None  # the model is at its initial weights
    _check_resumed_files(run, run_id, int(start.ckpt["epoch"]), cfg.train.epochs,
                         model if rebuild else None)  # fmt: skip
    return run_id


def _check_resumed_files(
    run: Run, run_id: str | None, done: int, epochs: int, init_model: nn.Module | None
) -> None:
    """``init.pt`` and every snapshot of a resumed run are whole and of this run.

    A damaged or missing ``init.pt`` and snapshot 0 (of a run with snapshots) are written
    again from ``init_model``
    (the model built from the config's seed, before the checkpoint is loaded; ``None`` when
    the run cannot rebuild them: a model given to :func:`train`, ``init.mode``); a damaged
    snapshot of an epoch the run will write again (the checkpoint's, or a later one) is
    deleted, to be written again.  Any other damaged file, and any file of another run, is
    refused: nothing is left broken behind a finished run.
    """
    where = f"cannot resume {str(run.path)!r}"
    try:
        run.initial_weights(run_id)
    except ForeignFileError as err:
        raise CheckpointError(f"{where}: {err}; move it away to rebuild it") from None
    except CheckpointError as err:
        missing = not run.init_path.exists()
        if init_model is None and not missing:
            raise CheckpointError(f"{where}: {err}; this run cannot rebuild it") from None
        if init_model is not None:
            logger.warning("%s: written again from the run's seed", err)
            run.save_init(init_model.state_dict(), run_id)
    for epoch, path in run.snapshot_files():
        try:
            run.snapshot(epoch, run_id)
        except ForeignFileError as err:
            raise CheckpointError(f"{where}: {err}; move it away") from None
        except (CheckpointError, DNWGraphError) as err:
            if epoch == 0 and init_model is not None:
                run.save_snapshot(0, wiring_snapshot(init_model), run_id)
            elif done <= epoch <= epochs:
                path.unlink()  # the run writes it again
            else:
                raise CheckpointError(
                    f"{where}: {err}; it cannot be rebuilt: move it away to resume without it"
                ) from None
            logger.warning("%s: written again", err)
    if init_model is not None and run.snapshot_files() and not run.has_snapshot(0):
        run.save_snapshot(0, wiring_snapshot(init_model), run_id)  # deleted: written again


def _build_session(
    cfg: TrainConfig, run: Run, env: DistEnv, model: nn.Module, splits: DataSplits, progress: bool
) -> _Session:
    """The optimizer, scheduler, samplers and batch size of the run."""
    try:
        optimizer = build_optimizer(model.parameters(), cfg.optim.to_dict())
    except ValueError as err:
        raise ConfigError(str(err)) from None
    net = env.wrap(model)
    batch = cfg.data.batch_size // env.world_size
    if batch < 1:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is smaller than the {env.world_size} processes"
        )
    train_sampler = env.sampler(splits.train, shuffle=True, seed=cfg.train.seed)
    test_sampler = env.sampler(splits.test, shuffle=False, seed=cfg.train.seed)
    steps_per_epoch = math.ceil(len(train_sampler) / batch)
    try:
        scheduler = build_scheduler(
            optimizer, cfg.schedule.to_dict(), steps_per_epoch, cfg.train.epochs
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return _Session(
        cfg=cfg,
        run=run,
        env=env,
        model=model,
        net=net,
        splits=splits,
        optimizer=optimizer,
        scheduler=scheduler,
        per_step=steps_per_iteration(cfg.schedule.name, cfg.schedule.interval),
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing),
        train_sampler=train_sampler,
        test_sampler=test_sampler,
        batch=batch,
        steps_per_epoch=steps_per_epoch,
        progress=progress and env.is_main,
    )


def _restore(s: _Session, ckpt: dict[str, Any]) -> None:
    """Load the weights, optimizer, scheduler, history and generators of the checkpoint."""
    try:
        load_state_dict(s.model, ckpt["model_state"], what="its model state")
        s.optimizer.load_state_dict(ckpt["optimizer_state"])
        s.scheduler.load_state_dict(ckpt["scheduler_state"]["state"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint in {str(s.run.path)!r} does not fit its config: {str(err).splitlines()[0]}"
        ) from None
    s.start_epoch, s.step = int(ckpt["epoch"]) + 1, int(ckpt["step"])
    s.history = [dict(r) for r in ckpt.get("history", [])]
    s.resumed = True
    set_rng_state(ckpt["rng"])


# ---------------------------------------------------------------------------- the epochs


def _run_epochs(s: _Session, callbacks: Sequence[Callback]) -> None:
    """Every epoch from ``s.start_epoch``; the main process saves and reports each one."""
    main = s.env.is_main
    s.model.eval()
    _, s.masks = wiring_stats(s.model)
    if main:
        _save_start(s)
    tb = TensorBoardLogger(s.run.tensorboard_dir, s.cfg.train.tensorboard and main)
    if main:
        for cb in callbacks:
            cb.on_train_begin(s.model, s.cfg)
    try:
        for epoch in range(s.start_epoch, s.cfg.train.epochs + 1):
            row = _run_epoch(s, epoch)
            if main:
                _save_epoch(s, epoch)
                tb.log(row, s.model)
                _report(s, row, callbacks)
            s.env.barrier()
    finally:
        tb.close()
    if main:
        for cb in callbacks:
            cb.on_train_end(s.history)


def _save_start(s: _Session) -> None:
    """The snapshot at the start (epoch 0 for a new run; for a resumed one, the checkpoint's
    epoch if it is missing); a resumed run's metrics, which may be deleted or one row behind
    the checkpoint."""
    if s.cfg.train.snapshots:
        done = s.start_epoch - 1
        if not s.resumed or not s.run.has_snapshot(done):
            s.run.save_snapshot(done, wiring_snapshot(s.model), s.run_id)
    if s.resumed:
        s.run.write_metrics(s.history)


def _run_epoch(s: _Session, epoch: int) -> dict[str, Any]:
    """Train and evaluate one epoch; its metric row (also appended to ``s.history``)."""
    t0 = time.perf_counter()
    try:
        train_loss, train_acc, lr = _train_epoch(s, epoch)
        _check_finite(s.model, epoch, s.run.path)  # before the test set reads the buffers
        test_loss, test_acc = _evaluate(s, epoch)
    except NonFiniteError as err:
        raise TrainingDiverged(
            f"epoch {epoch}: {err}; {_kept(epoch, s.run.path)}. Lower optim.lr or set "
            "optim.grad_clip."
        ) from None
    if not s.per_step:
        if isinstance(s.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            s.scheduler.step(test_loss)
        else:
            s.scheduler.step()
    s.model.eval()
    stats, s.masks = wiring_stats(s.model, s.masks)
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
    s.history.append(row)
    return row


def _save_epoch(s: _Session, epoch: int) -> None:
    """The snapshot, the checkpoint and the metrics of an epoch (main process)."""
    cfg = s.cfg
    if cfg.train.snapshots:
        s.run.save_snapshot(epoch, wiring_snapshot(s.model), s.run_id)
    s.run.save_checkpoint(
        model={"name": cfg.model.name, "kwargs": cfg.model.kwargs},
        model_state=s.model.state_dict(),
        optimizer_state=s.optimizer.state_dict(),
        scheduler_state={
            "name": cfg.schedule.name,
            "step": s.step,
            "steps_per_epoch": s.steps_per_epoch,
            "state": s.scheduler.state_dict(),
        },
        epoch=epoch,
        step=s.step,
        config=cfg.to_dict(),
        history=s.history,
        run_id=s.run_id,
        dnwgraph_version=s.built_by,
    )
    s.run.write_metrics(s.history)


def _report(s: _Session, row: dict[str, Any], callbacks: Sequence[Callback]) -> None:
    """Log the epoch's row, print it with ``progress``, and hand it to the callbacks."""
    epochs = s.cfg.train.epochs
    logger.info(_format_row(row, epochs))
    if s.progress:
        _print_row(row, epochs)
    for cb in callbacks:
        cb.on_epoch_end(row, s.model)


def _train_epoch(s: _Session, epoch: int) -> tuple[float, float, float]:
    """One pass over the training set: mean loss, accuracy, and the last step's lr."""
    if hasattr(s.train_sampler, "set_epoch"):
        s.train_sampler.set_epoch(epoch)
    indices = list(iter(s.train_sampler))
    gen = torch.Generator().manual_seed(s.cfg.train.seed * 1_000_003 + epoch * 9_973 + s.env.rank)
    s.net.train()
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    lr = s.optimizer.param_groups[0]["lr"]
    bar = _progress_bar(s, epoch)
    batches = _batches(s.splits.train, indices, s.batch, gen, s.cfg.data.num_workers)
    try:
        for i, (x, y) in enumerate(batches):
            lr = s.optimizer.param_groups[0]["lr"]
            where = _Where("train", epoch, indices[i * s.batch : (i + 1) * s.batch])
            loss, correct = _train_step(s, x, y, where, lr)
            sums += torch.tensor([loss * y.numel(), correct, y.numel()], dtype=torch.float64)
            if s.progress and (i % 10 == 0 or i == s.steps_per_epoch - 1):
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.3f}")
            bar.update(1)
    finally:
        bar.close()
    sums = s.env.all_reduce_sum(sums.to(s.env.device)).cpu()
    return float(sums[0] / sums[2]), float(sums[1] / sums[2]), lr


def _train_step(s: _Session, x: Tensor, y: Tensor, where: _Where, lr: float) -> tuple[float, int]:
    """One optimisation step on the batch ``(x, y)``: its loss and number of correct labels."""
    x, y = x.to(s.env.device, non_blocking=True), y.to(s.env.device, non_blocking=True)
    logits = s.net(x)
    _check_labels(y, logits, where)
    loss = s.criterion(logits, y)
    if not torch.isfinite(loss):
        _check_data(x, where)
        raise TrainingDiverged(
            f"the training loss became {loss.item()} at epoch {where.epoch}, step {s.step} "
            f"(lr {lr:.4g}); {_kept(where.epoch, s.run.path)}. Lower optim.lr or set "
            "optim.grad_clip."
        )
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if s.cfg.optim.grad_clip is not None:
        # DNW's straight-through gradients into weakly driven InstanceNorm nodes can be
        # huge (docs/training.md); gradients are already all-reduced, so every rank clips alike
        torch.nn.utils.clip_grad_norm_(s.net.parameters(), s.cfg.optim.grad_clip)
    s.optimizer.step()
    if s.per_step:
        s.scheduler.step()
    s.step += 1
    with torch.no_grad():
        return loss.item(), int((logits.argmax(1) == y).sum().item())


def _progress_bar(s: _Session, epoch: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=s.steps_per_epoch,
        desc=f"epoch {epoch}/{s.cfg.train.epochs}",
        # a bar redraws itself with carriage returns: in a log file it is noise
        disable=not s.progress or not _is_terminal(sys.stderr),
        leave=False,
        dynamic_ncols=True,
    )


@torch.no_grad()
def _evaluate(s: _Session, epoch: int) -> tuple[float, float]:
    """Mean loss and accuracy on the test set (summed over every process).

    Raises:
        DataError: a NaN or infinite value in a test sample whose loss is not finite.
        TrainingDiverged: the test loss of finite samples is not finite.
    """
    s.net.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    indices, size = list(iter(s.test_sampler)), s.cfg.data.test_batch_size
    for i, (x, y) in enumerate(_batches(s.splits.test, indices, size, None, 0)):
        x, y = x.to(s.env.device), y.to(s.env.device)
        logits = s.net(x)
        where = _Where("test", epoch, indices[i * size : (i + 1) * size])
        _check_labels(y, logits, where)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        if not torch.isfinite(loss):
            _check_data(x, where)
            raise TrainingDiverged(
                f"the test loss became {loss.item()} after epoch {epoch}; "
                f"{_kept(epoch, s.run.path)}. Lower optim.lr or set optim.grad_clip."
            )
        sums += torch.tensor(
            [loss.item(), (logits.argmax(1) == y).sum().item(), y.numel()], dtype=torch.float64
        )
    sums = s.env.all_reduce_sum(sums.to(s.env.device)).cpu()
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


# ---------------------------------------------------------------------------------- helpers


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
    factory = MODELS.find(name)
    out = dict(kwargs)
    if factory is not None and "num_classes" in inspect.signature(factory).parameters:
        out.setdefault("num_classes", num_classes)
    return out


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


@dataclass(frozen=True)
class _Where:
    """A batch: its split, epoch, and the dataset indices of its samples, in order."""

    split: str
    epoch: int
    indices: list[int]


def _check_data(x: Tensor, where: _Where) -> None:
    """Raise :class:`DataError` naming the split and the first sample of ``x`` holding NaN or
    infinity (called once a loss is not finite, so a finite batch costs nothing)."""
    if not x.is_floating_point():
        return
    bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten()
    if bad.numel():
        first = int(bad[0])
        sample = where.indices[first] if first < len(where.indices) else first
        raise DataError(
            f"the {where.split} data holds NaN or infinite values (sample {sample}, found at "
            f"epoch {where.epoch}, {bad.numel()} such sample(s) in its batch); the "
            f"{where.split} loss cannot be finite: clean the data"
        )


def _check_labels(y: Tensor, logits: Tensor, where: _Where) -> None:
    """Raise :class:`DataError` naming the split and the first sample whose label is not a
    class of the model's output (``cross_entropy`` would raise an ``IndexError``)."""
    classes = logits.shape[-1] if logits.dim() == 2 else None
    if classes is None or y.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
        return
    bad = ((y < 0) | (y >= classes)).nonzero().flatten()
    if bad.numel():
        first = int(bad[0])
        sample = where.indices[first] if first < len(where.indices) else first
        raise DataError(
            f"the {where.split} data has label {int(y[first])} at sample {sample}, but the "
            f"model has {classes} outputs (labels 0 to {classes - 1})"
        )


def _check_finite(model: nn.Module, epoch: int, out: Path) -> None:
    """Every parameter and every floating-point buffer (BatchNorm's running statistics) is
    finite, or the run stops (nothing of this epoch is saved)."""
    kinds = (("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
    for kind, tensors in kinds:
        for name, t in tensors:
            if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
                raise TrainingDiverged(
                    f"the {kind} {name} holds NaN or infinite values after epoch {epoch}; "
                    f"{_kept(epoch, out)}. Lower optim.lr, set optim.grad_clip or check the "
                    "scale of the data."
                )


def _kept(epoch: int, out: Path) -> str:
    last = epoch - 1
    if last > 0:
        return f"the last good checkpoint (epoch {last}) is kept in {str(out)!r}"
    return "no checkpoint was written yet"


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
