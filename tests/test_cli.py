"""``dnwgraph train`` / ``dnwgraph demo`` from the command line: fast help, runs, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnwgraph.cli import main
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
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 1
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # finished: nothing to do
    assert load_checkpoint(out)["epoch"] == 1
    assert main([*argv, "--overwrite"]) == 0
    assert load_checkpoint(out)["epoch"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "optim.lrr=1"], "unknown key optim.lrr"),
        (["--set", "optim.lr"], "expects section.key=value"),
        (["--set", "data.name=mnist", "data.dir=/nonexistent"], "does not exist"),
        (["--set", "data.name=cifar10"], "needs 'data.dir'"),
        (["--set", "model.name=nope"], "unknown model 'nope'"),
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
