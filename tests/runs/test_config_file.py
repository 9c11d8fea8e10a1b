"""Config files: one YAML reader and writer of a run's config.yaml (no other module spells the
name: tests/runs/test_rundir.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dnwgraph.errors import DNWGraphError
from dnwgraph.runs import Run
from dnwgraph.runs.config_file import parse_yaml, read_config_file, write_config_file

CONFIG = {
    "model": {"name": "mnist1d_static", "kwargs": {"ratio": 0.02, "selection": "random"}},
    "optim": {"lr": 0.1, "grad_clip": None, "kwargs": {"betas": [0.9, 0.99]}},
    "train": {"epochs": 3, "device": "cpu", "tensorboard": False},
}


def test_run_config_round_trip(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.write_config(CONFIG)
    assert run.config() == CONFIG
    assert list(run.config()) == list(CONFIG)  # sections stay in order
    assert yaml.safe_load(run.config_path.read_text()) == CONFIG  # plain YAML, any reader
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary file left
    run.write_config({"train": {"epochs": 1}})  # replaced whole
    assert run.config() == {"train": {"epochs": 1}}
    run.config_path.write_text("")
    assert run.config() == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, r"run config '.*config\.yaml' does not exist"),
        ("optim: [1,\n", r"run config '.*config\.yaml' is not valid YAML: .*line"),
        ("- 1\n- 2\n", r"run config '.*config\.yaml' must hold a mapping of sections \(got list\)"),
        ("just text\n", r"must hold a mapping of sections \(got str\)"),
        ("optim:\n  lr: 1\n  lr: 2\n", r"duplicate key 'lr' on lines 2 and 3 of .*config\.yaml"),
        (b"\x80\x81PK\x03\x04", r"run config '.*config\.yaml' is not UTF-8 text \(byte 0\)"),
    ],
)
def test_a_damaged_run_config_is_one_clear_error(tmp_path: Path, text, match: str) -> None:
    run = Run(tmp_path)
    if isinstance(text, bytes):
        run.config_path.write_bytes(text)
    elif text is not None:
        run.config_path.write_text(text)
    with pytest.raises(DNWGraphError, match=match):
        run.config()


def test_the_writer_takes_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"a config is a mapping of sections \(got list\)"):
        Run(tmp_path).write_config([("train", {})])  # type: ignore[arg-type]
    write_config_file(tmp_path / "c.yaml", CONFIG)
    assert read_config_file(tmp_path / "c.yaml") == CONFIG
    assert parse_yaml("a: {b: 1}") == {"a": {"b": 1}}


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\noptim:\n  kwargs:\n    foreach: *a{levels}\n"


def test_aliases_that_expand_a_config_beyond_reason_are_refused() -> None:
    """Before: nine levels of ten aliases (a billion values in a few lines) parsed in 3 s,
    and `dnwgraph train` then hung printing the value in its error message."""
    with pytest.raises(DNWGraphError, match=r"^c\.yaml holds over 100,000 values once its YAML"):
        parse_yaml(_alias_bomb(9), "c.yaml")
    with pytest.raises(DNWGraphError, match=r"^c\.yaml contains itself through a YAML alias"):
        parse_yaml("x: &x [1, *x]\n", "c.yaml")
    ok = parse_yaml(_alias_bomb(3), "c.yaml")  # 11,111 values: aliases are fine
    assert len(ok["a3"]) == 10 and ok["a3"][0] is ok["a2"]
    shared = parse_yaml("base: &b {lr: 0.1}\noptim: *b\nother: *b\n")
    assert shared["optim"] == {"lr": 0.1}
