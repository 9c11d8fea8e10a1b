"""``dnwgraph train`` / ``dnwgraph demo`` from the command line: fast help, runs, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnwgraph.cli import main
from dnwgraph.runs import Run
from dnwgraph.train import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent / "train"))
from tiny_training import resume_config  # noqa: E402  (registers the tiny model and dataset)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from dnwgraph.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['demo', '--help']):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "    assert '--' in out.getvalue()\n"
        "assert 'torch' not in sys.modules, 'help imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _config_file(tmp_path: Path, epochs: int = 2) -> Path:
    path = tmp_path / "tiny.yaml"
    config = resume_config(epochs, 64)
    del config["data"]["num_samples"]  # the blobs' default; other datasets do not take it
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_then_resume_and_overwrite(tmp_path: Path, capsys) -> None:
    cfg, out = _config_file(tmp_path), tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--out", str(out), "--quiet"]
    assert main([*argv, "--set", "train.epochs=1"]) == 0
    assert "done:" in capsys.readouterr().out
    assert Run(out).config()["train"]["epochs"] == 1
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # finished: nothing to do
    assert load_checkpoint(out)["epoch"] == 1
    assert main([*argv, "--overwrite"]) == 0
    assert load_checkpoint(out)["epoch"] == 2


def test_a_pretrained_folder_is_a_source_and_is_never_written_into(tmp_path: Path, capsys) -> None:
    """load_model reads a save_pretrained folder, so export / analyze / plot take one too; their
    default outputs go beside it (the folder is save_pretrained's: it would refuse to update
    a folder holding more)."""
    from dnwgraph import create_model, save_pretrained

    folder = save_pretrained(create_model("tiny_static"), tmp_path / "model")
    assert main(["export", str(folder), "-o", str(tmp_path / "w.csv")]) == 0
    assert main(["analyze", str(folder), "--num-random", "0", "--no-figures"]) == 0
    assert main(["plot", str(folder)]) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert (tmp_path / "model_analysis" / "report.md").is_file()
    assert (tmp_path / "model_figures" / "wiring.png").is_file()
    assert (tmp_path / "w.csv").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "-o", str(tmp_path / "x.csv")]) == 2
    _one_line_error(capsys, "not a run", "not a pretrained-model folder")


def test_a_warning_is_one_line_naming_the_tool(tmp_path: Path, capsys) -> None:
    """A model saved by a newer dnwgraph loads with a warning: on the command line it reads
    ``dnwgraph: warning: ...``, without Python's source line."""
    import json
    import warnings

    from dnwgraph import create_model, save_pretrained
    from dnwgraph.models import _folder

    folder = save_pretrained(create_model("mnist1d_static"), tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["dnwgraph_version"] = "99.0"
    config["config_sha256"] = _folder.config_digest(config, "config_sha256")
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["export", str(folder), "-o", str(tmp_path / "w.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("dnwgraph: warning: ")
    assert "newer than this one" in err[0] and "UserWarning" not in err[0]
    assert warnings.showwarning is not None and warnings.showwarning.__module__ == "warnings"


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_export_never_writes_over_its_own_source(tmp_path: Path, capsys, spelling: str) -> None:
    """Converting a wiring file onto itself would replace the user's file (its comments, its
    layout) by the export; refused in one line whatever the spelling of the path."""
    source = tmp_path / "mine.csv"
    text = "# my notes\nsource,target\n0,1\n1,2\n"
    source.write_text(text)
    output = {
        "same": source,
        "dotted": tmp_path / "." / "mine.csv",
        "link": tmp_path / "link.csv",
    }[spelling]
    if spelling == "link":
        output.symlink_to(source)
    assert main(["export", str(source), "-o", str(output)]) == 2
    _one_line_error(capsys, "is the file it reads")
    assert source.read_text() == text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "optim.lrr=1"], "unknown key optim.lrr"),
        (["--set", "optim.lr"], "expects section.key=value"),
        (["--set", "data.name=mnist", "data.dir=/nonexistent"], "does not exist"),
        (["--set", "data.name=cifar10"], "needs 'data.dir'"),
        (["--set", "model.name=nope"], "unknown model 'nope'"),
        (["--set", "optim.momentum=2"], "optim.momentum must be a number in [0, 1) (got 2)"),
        (["--set", "optim.name=adam", "optim.kwargs.betas=[0.9]"], "betas must be two numbers"),
        (["--set", "train.seed=" + "9" * 30], "train.seed must be an int in [0, 4294967296)"),
        (["--set", "optim.name=LBFGS"], "LBFGS is not supported: it needs a closure"),
        (["--set", "optim.name=sparseadam"], "SparseAdam is not supported"),
        (["--set", "optim.lr=1e-3", "optim.momentum=1e1"], "(got 10.0)"),  # 1e1 is a number
    ],
)
def test_train_errors_are_one_line(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    argv = ["train", "--config", str(_config_file(tmp_path)), "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnwgraph: error:") and message in err
    assert "Traceback" not in err


def test_corrupt_checkpoint_and_bad_arguments(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"\x00" * 10)
    assert main(["train", "--resume", str(run)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--config", "x.yaml"]) == 2
    assert "drop --config" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "give --config FILE" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_nan_loss_exits_with_a_message(tmp_path: Path, capsys) -> None:
    argv = [
        "train",
        "--config",
        str(_config_file(tmp_path)),
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--set",
        "model.name=_test_nan_after",
        "model.kwargs.nan_after=1",
    ]
    assert main(argv) == 1
    assert "training stopped: the training loss became nan" in capsys.readouterr().err


# ------------------------------------------------------------------ nothing a user owns is lost


def _trained(tmp_path: Path, capsys) -> tuple[Path, Path]:
    cfg, out = _config_file(tmp_path, epochs=1), tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return cfg, out


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("dnwgraph: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_overwrite_never_deletes_a_user_folder(tmp_path: Path, capsys) -> None:
    cfg = _config_file(tmp_path)
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    for extra in ([], ["--overwrite"]):
        argv = ["train", "--config", str(cfg), "--out", str(user), "--quiet", *extra]
        assert main(argv) == 2
        err = _one_line_error(capsys, "is not empty and is not a dnwgraph run", "thesis.txt")
        assert "already holds a run" not in err
    assert (user / "thesis.txt").read_text() == "years of work"


@pytest.mark.parametrize("user_file", ["figures/mine.png", "analysis/notes.md", ".notes"])
def test_overwrite_never_deletes_a_user_file_inside_a_run(
    tmp_path: Path, capsys, user_file: str
) -> None:
    cfg, out = _trained(tmp_path, capsys)
    assert main(["plot", str(out)]) == 0  # what the tools write is part of the run
    (out / user_file).parent.mkdir(exist_ok=True)
    (out / user_file).write_text("mine")
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet", "--overwrite"]) == 2
    _one_line_error(capsys, "holds a run and files that are not part of it", user_file)
    assert (out / user_file).read_text() == "mine"
    assert (out / "figures" / "wiring.png").exists() and load_checkpoint(out)["epoch"] == 1
    (out / user_file).unlink()
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet", "--overwrite"]) == 0


def test_dot_as_the_output_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg = _config_file(tmp_path, epochs=1)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert main(["train", "--config", str(cfg), "--out", ".", "--quiet"]) == 0
    assert main(["train", "--config", str(cfg), "--out", ".", "--quiet", "--overwrite"]) == 2
    _one_line_error(capsys, "--overwrite will not replace '.': it is the working directory")
    assert main(["train", "--resume", ".", "--quiet"]) == 0
    assert main(["plot", ".", "-o", "."]) == 0  # figures beside the run: yours from now on
    capsys.readouterr()
    assert main(["export", ".", "-o", "."]) == 2
    _one_line_error(capsys, "expected a file path for the export (got '.', a folder)")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert load_checkpoint(".")["epoch"] == 1 and (Path("wiring.png")).is_file()


def test_a_runs_config_starts_a_new_run(tmp_path: Path, capsys) -> None:
    _, out = _trained(tmp_path, capsys)
    new = tmp_path / "new"
    assert main(["train", "--config", str(out / "config.yaml"), "--out", str(new), "--quiet"]) == 0
    assert Run(new).run_id() != Run(out).run_id()
    assert Run(new).config() == Run(out).config()


def test_overwrite_never_deletes_a_file(tmp_path: Path, capsys) -> None:
    cfg, thesis = _config_file(tmp_path), tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    argv = ["train", "--config", str(cfg), "--out", str(thesis), "--overwrite", "--quiet"]
    assert main(argv) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert thesis.read_text() == "years of work"


def test_overwrite_never_empties_the_working_directory(tmp_path: Path, capsys, monkeypatch) -> None:
    cfg, run = _trained(tmp_path, capsys)
    monkeypatch.chdir(run)
    before = sorted(p.name for p in run.iterdir())
    argv = ["train", "--config", str(cfg), "--out", ".", "--overwrite", "--quiet"]
    assert main(argv) == 2
    _one_line_error(capsys, "will not replace", "it is the working directory")
    assert sorted(p.name for p in run.iterdir()) == before
    monkeypatch.chdir(tmp_path)  # tmp_path holds tiny.yaml and run/: not a run
    assert main([*argv[:4], ".", *argv[5:]]) == 2
    _one_line_error(capsys, "is not empty and is not a dnwgraph run")
    assert cfg.is_file()


def test_overwrite_never_replaces_the_folder_holding_the_config(tmp_path: Path, capsys) -> None:
    _, run = _trained(tmp_path, capsys)
    inside = run / "config.yaml"
    argv = ["train", "--config", str(inside), "--out", str(run), "--overwrite", "--quiet"]
    assert main(argv) == 2
    _one_line_error(capsys, "holds the config file in use")
    assert inside.is_file() and load_checkpoint(run)["epoch"] == 1


def test_out_under_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    cfg, thesis = _config_file(tmp_path), tmp_path / "thesis.txt"
    thesis.write_text("x")
    assert main(["train", "--config", str(cfg), "--out", str(thesis / "run"), "--quiet"]) == 2
    _one_line_error(capsys, "cannot create the run directory", "is a file, not a folder")


def test_nproc_must_be_positive(tmp_path: Path, capsys) -> None:
    cfg = _config_file(tmp_path)
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as info:
            main(["train", "--config", str(cfg), "--nproc", bad])
        assert info.value.code == 2
        assert "--nproc: must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_export_never_writes_over_a_run_file(tmp_path: Path, capsys) -> None:
    _, run = _trained(tmp_path, capsys)
    metrics = (run / "metrics.csv").read_bytes()
    assert main(["export", str(run), "-o", str(run / "metrics.csv")]) == 2
    _one_line_error(capsys, "is a file of the run")
    assert (run / "metrics.csv").read_bytes() == metrics
    assert main(["plot", str(run), "-o", str(run / "wiring")]) == 2
    _one_line_error(capsys, "is a file of the run")
    assert main(["export", str(run), "-o", str(run / "wiring.csv")]) == 0  # beside is fine


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "data.name=nope"], "unknown dataset 'nope'"),
        (["--set", "data.name=mnist1d", "data.train_split=1.5"], "'train_split' must be in"),
        (["--set", "data.name=mnist1d", "data.num_samples=3"], "'num_samples' must be an int"),
        (["--set", "data.name=imagefolder", "data.dir=."], "needs torchvision"),
        (["--set", "model.kwargs.selection=random", "model.kwargs.seed=x"], "'seed' must be"),
    ],
)
def test_data_and_model_errors_are_one_line(
    tmp_path: Path, capsys, monkeypatch, extra: list[str], message: str
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed
    argv = ["train", "--config", str(_config_file(tmp_path)), "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet", *extra]) == 2
    _one_line_error(capsys, message)
    assert not (tmp_path / "r").exists()  # a failed start leaves no half run


def test_duplicate_config_key_is_an_error(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("optim:\n  lr: 0.1\n  lr: 0.5\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "duplicate key 'lr' on lines 2 and 3")


def test_demo_argument_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "0"])
    assert (
        info.value.code == 2 and "--epochs: must be a positive integer" in capsys.readouterr().err
    )
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    assert main(["demo", "--out", str(thesis), "--epochs", "1", "--quiet"]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert thesis.read_text() == "years of work"


def test_a_diverged_run_exits_1_and_keeps_a_finite_checkpoint(tmp_path: Path, capsys) -> None:
    argv = [
        "train",
        "--config",
        str(_config_file(tmp_path, epochs=3)),
        "--out",
        str(tmp_path / "r"),
    ]
    argv += [
        "--quiet",
        "--set",
        "model.name=_test_nan_weight_after",
        "model.kwargs.nan_after=15",
    ]  # 12 steps/epoch
    assert main(argv) == 1
    assert "training stopped: epoch 2: 1 of" in capsys.readouterr().err
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt["epoch"] == 1
    assert all(t.isfinite().all() for t in ckpt["model_state"].values() if t.is_floating_point())


def test_huge_learning_rate_never_reports_success(tmp_path: Path, capsys) -> None:
    argv = [
        "train",
        "--config",
        str(_config_file(tmp_path, epochs=3)),
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--quiet", "--set", "optim.lr=1000", "optim.grad_clip=null"]) == 1
    assert "training stopped:" in capsys.readouterr().err
    if (tmp_path / "r" / "checkpoint.pt").exists():
        ckpt = load_checkpoint(tmp_path / "r")
        assert all(
            t.isfinite().all() for t in ckpt["model_state"].values() if t.is_floating_point()
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--config", "{missing}"],
        ["train", "--resume", "{missing}"],
        ["demo", "--out", "{file}/under"],
        ["export", "{missing}", "-o", "{tmp}/w.csv"],
        ["analyze", "{missing}"],
        ["plot", "{missing}"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_command_exits_2_on_a_user_error(tmp_path: Path, capsys, argv: list[str]) -> None:
    from dnwgraph.cli import COMMANDS

    assert {"train", "demo", "export", "analyze", "plot"} == set(COMMANDS)
    (tmp_path / "file").write_text("x")
    where = {"missing": tmp_path / "missing", "file": tmp_path / "file", "tmp": tmp_path}
    assert main([a.format(**where) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnwgraph: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("name", ["train", "demo", "export", "analyze", "plot"])
def test_a_programming_error_keeps_its_traceback(monkeypatch, name: str) -> None:
    """Only user errors become one line: a TypeError (or any other bug) raised inside a
    handler propagates out of ``main``, whichever command runs."""
    from importlib import import_module

    from dnwgraph.cli import COMMANDS

    module, func = COMMANDS.get(name)[0].split(":")

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(import_module(module), func, broken)
    argv = {"train": ["--config", "c.yaml"], "demo": [], "export": ["src", "-o", "w.csv"]}.get(
        name, ["src"]
    )
    with pytest.raises(TypeError, match="a bug"):
        main([name, *argv])


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("thesis.txt/w.csv", "cannot write the export {0}: {1} is a file, not a folder"),
        ("thesis.txt/deeper/w.csv", "{1} is a file, not a folder"),
        ("old.csv/", "expected a file path for the export (got {0}, a folder path: it ends"),
        ("folder.csv", "expected a file path for the export (got {0}, a folder)"),
        ("", "expected a path for the export (got '')"),
    ],
)
def test_export_to_a_path_that_cannot_be_its_file_is_one_line(
    tmp_path: Path, capsys, output: str, message: str
) -> None:
    """Before: 'File exists', 'Is a directory' naming a temporary file, and for 'old.csv/'
    the user's old.csv overwritten."""
    source = tmp_path / "w.csv"
    source.write_text("source,target\n0,1\n")
    (tmp_path / "thesis.txt").write_text("years of work")
    (tmp_path / "old.csv").write_text("mine")
    (tmp_path / "folder.csv").mkdir()
    target = f"{tmp_path}/{output}" if output else ""
    assert main(["export", str(source), "-o", target]) == 2
    shown = [repr(target), repr(str(tmp_path / "thesis.txt"))]
    _one_line_error(capsys, message.format(*shown))
    assert (tmp_path / "thesis.txt").read_text() == "years of work"
    assert (tmp_path / "old.csv").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.csv",
        "old.csv",
        "thesis.txt",
        "w.csv",
    ]


@pytest.mark.parametrize("command", ["analyze", "plot"])
@pytest.mark.parametrize(
    ("output", "message"),
    [("thesis.txt", "expected a folder for the {0} (got {1}, a file)"),
     ("thesis.txt/sub", "cannot write the {0} {1}: {2} is a file, not a folder")],
)  # fmt: skip
def test_analysis_folder_that_is_a_file_is_one_line(
    tmp_path: Path, capsys, command: str, output: str, message: str
) -> None:
    """Before: 'File exists: ...' or 'Not a directory: ...' naming the wrong path."""
    source = tmp_path / "w.csv"
    source.write_text("source,target\n0,1\n")
    (tmp_path / "thesis.txt").write_text("years of work")
    extra = ["--num-random", "0", "--no-figures"] if command == "analyze" else []
    assert main([command, str(source), "-o", str(tmp_path / output), *extra]) == 2
    what = "report" if command == "analyze" else "figures"
    shown = [repr(str(tmp_path / output)), repr(str(tmp_path / "thesis.txt"))]
    _one_line_error(capsys, message.format(what, *shown))
    assert (tmp_path / "thesis.txt").read_text() == "years of work"
