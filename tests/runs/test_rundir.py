"""The run directory: what --overwrite may replace, what the tools may write, atomic creation."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from dnwgraph.errors import DNWGraphError
from dnwgraph.runs import rundir
from dnwgraph.runs.rundir import (
    RUN_FILES,
    RUN_FOLDERS,
    RunExistsError,
    check_new_run,
    check_not_run_file,
    clear_outputs,
    is_run_dir,
    owning_run,
    remove_stale_run_tmp,
    start_run,
)


def _run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "init.pt", "checkpoint.pt", "metrics.csv"):
        (folder / name).write_text(name)
    (folder / "wiring").mkdir(exist_ok=True)
    (folder / "wiring" / "epoch_0000.pt").write_text("snap")
    return folder


def test_a_run_is_recognised_and_a_user_folder_is_not(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    assert is_run_dir(run)
    (run / "figures").mkdir()
    (run / ".checkpoint.tmp.pt").write_text("stale")
    assert is_run_dir(run)
    (run / "thesis.txt").write_text("years of work")
    assert not is_run_dir(run)
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    assert not is_run_dir(user) and not is_run_dir(tmp_path / "missing")
    assert not is_run_dir(run / "config.yaml")


def test_check_new_run_refuses_a_user_folder_even_with_overwrite(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(DNWGraphError, match=r"is not empty and is not a dnwgraph run .*thesis"):
            check_new_run(user, overwrite)
    run = _run(tmp_path / "run")
    (run / "notes.md").write_text("mine")
    with pytest.raises(
        DNWGraphError, match=r"holds a run and files that are not part of it \(notes"
    ):
        check_new_run(run, overwrite=True)


def test_check_new_run_refuses_files_and_paths_under_files(tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    with pytest.raises(DNWGraphError, match="is a file, not a folder"):
        check_new_run(thesis, overwrite=True)
    with pytest.raises(DNWGraphError, match=r"cannot create .*thesis.txt' is a file"):
        check_new_run(thesis / "run")
    assert thesis.read_text() == "years of work"


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes")
def test_check_new_run_refuses_an_unwritable_parent(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DNWGraphError, match="is not writable"):
            check_new_run(locked / "run")
    finally:
        locked.chmod(0o700)


def test_check_new_run_refuses_an_unwritable_parent_as_root_too(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(DNWGraphError, match="is not writable"):
        check_new_run(tmp_path / "run")


def test_run_exists_without_overwrite(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    with pytest.raises(RunExistsError, match="--resume .*--overwrite"):
        check_new_run(run)
    check_new_run(run, overwrite=True)
    check_new_run(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_new_run(tmp_path / "empty")


def test_overwrite_never_replaces_cwd_home_root_or_the_config_folder(
    tmp_path: Path, monkeypatch
) -> None:
    run = _run(tmp_path / "run")
    monkeypatch.chdir(run)
    with pytest.raises(DNWGraphError, match="it is the working directory"):
        check_new_run(Path("."), overwrite=True)
    monkeypatch.chdir(run / "wiring")
    with pytest.raises(DNWGraphError, match="working directory or holds it"):
        check_new_run(Path(".."), overwrite=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(run))
    with pytest.raises(DNWGraphError, match="it is the home directory"):
        check_new_run(run, overwrite=True)
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(DNWGraphError, match="holds the config file in use"):
        check_new_run(run, overwrite=True, config_file=run / "config.yaml")
    check_new_run(run, overwrite=True, config_file=tmp_path / "other.yaml")
    assert is_run_dir(run)


def test_owning_run_and_check_not_run_file(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    for own in ("metrics.csv", "checkpoint.pt", "config.yaml", "init.pt", "wiring",
                "wiring/epoch_0000.pt", "wiring/x.png", "tensorboard/events"):  # fmt: skip
        assert owning_run(run / own) == run, own
        with pytest.raises(DNWGraphError, match=r"is a file of the run .*write it elsewhere"):
            check_not_run_file(run / own)
    for free in ("wiring.csv", "figures", "analysis/report.md", "export.graphml"):
        assert owning_run(run / free) is None, free
        check_not_run_file(run / free)
    assert owning_run(tmp_path / "metrics.csv") is None  # not inside a run


def test_start_run_creates_the_folder_with_its_config_at_once(tmp_path: Path) -> None:
    seen = []

    def write(folder: Path) -> None:
        seen.append(folder)
        assert not (tmp_path / "new").exists()  # the run appears only once complete
        (folder / "config.yaml").write_text("cfg")

    start_run(tmp_path / "new", write, overwrite=False)
    assert seen[0].name.startswith(".new.") and seen[0].name.endswith(".tmp")
    assert (tmp_path / "new" / "config.yaml").read_text() == "cfg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["config.yaml"]  # unlocked


def test_a_kill_during_creation_leaves_no_run_and_is_cleaned_next_time(tmp_path: Path) -> None:
    class Killed(BaseException):
        pass

    def killed(folder: Path) -> None:
        (folder / ".config.tmp.yaml").write_text("half")
        raise Killed

    with pytest.raises(Killed):
        start_run(tmp_path / "run", killed, overwrite=False)
    assert not (tmp_path / "run").exists()
    start_run(tmp_path / "run", lambda f: (f / "config.yaml").write_text("cfg"), overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_overwrite_drops_the_checkpoint_first_then_the_rest(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    (run / "figures").mkdir()

    def write(folder: Path) -> None:
        assert not (folder / "checkpoint.pt").exists()  # no old checkpoint beside a new config
        (folder / "config.yaml").write_text("new")

    start_run(run, write, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert (run / "config.yaml").read_text() == "new"


def test_clear_outputs_touches_only_run_names(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    (run / "keep.txt").write_text("user")
    clear_outputs(run)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "keep.txt"]


# ------------------------------------------------------- runs/ is the one home of run files

PACKAGE = Path(__file__).resolve().parents[2] / "dnwgraph"
#: the names of the run layout, importable from dnwgraph.runs.rundir
CONSTANTS = ("CONFIG", "INIT", "CHECKPOINT", "METRICS", "WIRING", "TENSORBOARD")
assert all(isinstance(getattr(rundir, name), str) for name in CONSTANTS)


def _run_file_literals(source: str) -> list[str]:
    """What in ``source`` spells a run file outside ``dnwgraph.runs``: a string holding one of
    the run's file names (docstrings aside), a run folder joined onto a path, a snapshot file
    pattern, or an import of the name constants."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }

    def folder(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in RUN_FOLDERS

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dnwgraph.runs"):
            found += [f"imports {a.name}" for a in node.names if a.name in CONSTANTS]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if id(node) in docstrings:
                continue
            if any(name in text for name in RUN_FILES) or any(
                f"{name}/" in text for name in RUN_FOLDERS
            ):
                found.append(f"the string {text!r} (line {node.lineno})")
            elif text == "epoch_" or (text.startswith("epoch_") and text.endswith(".pt")):
                found.append(f"the snapshot pattern {text!r} (line {node.lineno})")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if folder(node.right):
                found.append(f"the folder {node.right.value!r} joined (line {node.lineno})")
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Path"):
            found += [
                f"the folder {a.value!r} joined (line {node.lineno})"
                for a in node.args
                if folder(a)
            ]
    return found


def test_no_run_file_name_outside_the_runs_package() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "runs":  # the run format itself
            continue
        found = _run_file_literals(path.read_text())
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('x = out / "checkpoint.pt"', ["the string 'checkpoint.pt' (line 1)"]),
        ('x = f"its config.yaml ({d})"', ["the string 'its config.yaml (' (line 1)"]),
        ('x = run / "wiring"', ["the folder 'wiring' joined (line 1)"]),
        ('x = Path(run, "tensorboard")', ["the folder 'tensorboard' joined (line 1)"]),
        ('x = f"epoch_{e:04d}.pt"', ["the snapshot pattern 'epoch_' (line 1)"]),
        ("from dnwgraph.runs.rundir import METRICS", ["imports METRICS"]),
        ('def f():\n    """Writes metrics.csv."""\n    return getattr(m, "wiring")', []),
        ('row = {"epoch_time_s": 1.0, "snapshots": True}', []),
    ],
)
def test_the_run_file_check_sees_what_it_looks_for(source: str, expected: list[str]) -> None:
    assert _run_file_literals(source) == expected


# ------------------------------------------------- a user's file anywhere is never removed

USER_FILES = (
    "figures/my_plot.png", "analysis/notes.md", "analysis/figures/custom.svg", "wiring/x.png",
    "tensorboard/readme.txt", ".notes", ".draft.tmp.txt", ".backup.tmp", "figures/.hidden",
    "wiring/.keep.tmp", "analysis/sub/deep.txt",
    "wiring.graphml",  # `dnwgraph export RUN -o RUN/wiring.graphml` (docs/analysis.md): yours
)  # fmt: skip


def _full_run(folder: Path) -> Path:
    _run(folder)
    for rel in ("figures/wiring.png", "figures/wiring.gif", "analysis/report.md",
                "analysis/figures/degrees.png", "tensorboard/events.out.tfevents.1.host.2.0",
                "wiring/.epoch_0001.tmp.pt", ".checkpoint.tmp.pt", ".dnwgraph.lock",
                ".metrics.0a1b2c3d.tmp.csv", "figures/.wiring.ffff0000.tmp.png"):  # fmt: skip
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(rel)
    return folder


def test_what_plot_and_analyze_write_is_part_of_the_run(tmp_path: Path) -> None:
    run = _full_run(tmp_path / "run")
    assert is_run_dir(run)
    start_run(run, lambda f: (f / "config.yaml").write_text("new"), overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


@pytest.mark.parametrize("user_file", USER_FILES)
def test_a_user_file_anywhere_in_a_run_refuses_the_overwrite(tmp_path: Path, user_file) -> None:
    run = _full_run(tmp_path / "run")
    (run / user_file).parent.mkdir(parents=True, exist_ok=True)
    (run / user_file).write_text("mine")
    assert not is_run_dir(run)
    shown = user_file if "/" not in user_file[:-1] else user_file
    with pytest.raises(DNWGraphError, match=r"holds a run and files that are not part of it"):
        check_new_run(run, overwrite=True)
    with pytest.raises(DNWGraphError, match=re.escape(shown.split("/sub")[0])):
        start_run(run, lambda f: (f / "config.yaml").write_text("new"), overwrite=True)
    assert (run / user_file).read_text() == "mine"
    assert (run / "checkpoint.pt").exists()  # nothing was touched


@pytest.mark.parametrize("user_file", USER_FILES)
def test_clear_outputs_keeps_a_user_file_anywhere(tmp_path: Path, user_file) -> None:
    run = _full_run(tmp_path / "run")
    (run / user_file).parent.mkdir(parents=True, exist_ok=True)
    (run / user_file).write_text("mine")
    clear_outputs(run, keep_config=False)
    assert (run / user_file).read_text() == "mine"
    left = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert left == [user_file, ".dnwgraph.lock"] or left == sorted([user_file, ".dnwgraph.lock"])


@pytest.mark.parametrize("hidden", [".gitkeep", ".notes.tmp", ".x.tmp.txt", ".DS_Store"])
def test_a_folder_holding_only_a_hidden_user_file_is_not_empty(tmp_path: Path, hidden) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / hidden).write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(
            DNWGraphError, match=rf"is not empty and is not a dnwgraph run .*{re.escape(hidden)}"
        ):
            check_new_run(out, overwrite)
        with pytest.raises(DNWGraphError, match="is not empty"):
            start_run(out, lambda f: (f / "config.yaml").write_text("cfg"), overwrite)
    assert (out / hidden).read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [hidden]


def test_a_folder_holding_only_what_a_killed_run_left_is_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".dnwgraph.lock").write_text('{"pid": 1}')
    (out / ".config.tmp.yaml").write_text("half")
    check_new_run(out)
    start_run(out, lambda f: (f / "config.yaml").write_text("cfg"), overwrite=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_remove_stale_run_tmp_touches_only_the_runs_own_names(tmp_path: Path) -> None:
    run = _full_run(tmp_path / "run")
    for user in (".draft.tmp.txt", "figures/.mine.tmp.png", "wiring/.keep.tmp"):
        (run / user).write_text("mine")
    removed = remove_stale_run_tmp(run)
    assert [p.relative_to(run).as_posix() for p in removed] == [
        ".checkpoint.tmp.pt",
        ".metrics.0a1b2c3d.tmp.csv",
        "figures/.wiring.ffff0000.tmp.png",
        "wiring/.epoch_0001.tmp.pt",
    ]
    assert (run / ".draft.tmp.txt").exists() and (run / "wiring" / ".keep.tmp").exists()


def test_every_file_the_tools_write_is_known_to_the_run_layout() -> None:
    from dnwgraph.analysis import plots, report

    names = set(re.findall(r'"(\w+\.(?:png|gif|md|json))"', Path(plots.__file__).read_text()))
    names |= set(re.findall(r'"(\w+\.(?:png|gif|md|json))"', Path(report.__file__).read_text()))
    assert names - {"w.gif"} <= set(rundir.FIGURES + rundir.REPORT + rundir.REPORT_FIGURES)
