"""Output paths the user names: a file path, a folder path, refused in one line when they cannot
be written as meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnwgraph._outputs import check_output_file, check_output_folder
from dnwgraph.analysis import save_wiring
from dnwgraph.analysis.plots import save_figure
from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import Wiring


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "folder.csv").mkdir()
    return tmp_path


def test_a_writable_file_path_passes_and_keeps_its_spelling(place: Path) -> None:
    assert check_output_file(place / "new" / "deeper" / "w.csv") == place / "new/deeper/w.csv"
    assert check_output_file(place / "notes.txt") == place / "notes.txt"  # replaced on write
    assert check_output_folder(f"{place}/figures/") == place / "figures"
    assert check_output_folder(place / "folder.csv") == place / "folder.csv"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes.txt/w.csv", r"cannot write the export '.*/notes.txt/w.csv': '.*/notes.txt' is a "),
        ("notes.txt/a/b/w.csv", r"'.*/notes.txt' is a file, not a folder"),
        ("w.csv/", r"expected a file path for the export \(got '.*/w.csv/', a folder path"),
        ("folder.csv", r"expected a file path for the export \(got '.*/folder.csv', a folder\)"),
    ],
)
def test_a_file_path_that_cannot_be_a_file(place: Path, name: str, message: str) -> None:
    path = f"{place}/{name}"
    with pytest.raises(DNWGraphError, match=message):
        check_output_file(path, "export")
    with pytest.raises(DNWGraphError, match=message):
        save_wiring(Wiring([(0, 1)]), path)
    assert (place / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in place.iterdir()) == ["folder.csv", "notes.txt"]


def test_a_trailing_slash_never_replaces_the_file_it_names(place: Path) -> None:
    """Before: save_wiring(w, 'notes.csv/') wrote over notes.csv."""
    (place / "old.csv").write_text("mine")
    with pytest.raises(DNWGraphError, match="a folder path: it ends with '/'"):
        save_wiring(Wiring([(0, 1)]), f"{place}/old.csv/")
    assert (place / "old.csv").read_text() == "mine"


def test_a_folder_path_that_cannot_be_a_folder(place: Path) -> None:
    with pytest.raises(DNWGraphError, match=r"expected a folder for the report \(got '.*', a file"):
        check_output_folder(place / "notes.txt", "report")
    with pytest.raises(DNWGraphError, match=r"'.*/notes.txt' is a file, not a folder"):
        check_output_folder(place / "notes.txt" / "figures", "report")
    with pytest.raises(DNWGraphError, match=r"expected a path for the report \(got ''\)"):
        check_output_folder("", "report")


def test_a_figure_over_a_folder_is_refused_before_drawing(place: Path) -> None:
    (place / "wiring.png").mkdir()
    with pytest.raises(DNWGraphError, match=r"expected a file path for the figure"):
        save_figure(lambda ax: ax.plot([0, 1]), place / "wiring.png")
    assert (place / "wiring.png").is_dir() and not any((place / "wiring.png").iterdir())
