"""Hub ids and ``push_to_hub`` (the ``hub`` extra): offline, never on the network."""

import os
import shutil
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: no request leaves

import pytest
import torch

from dnwgraph import create_model
from dnwgraph.errors import DNWGraphError, MissingDependencyError
from dnwgraph.models import from_pretrained, push_to_hub, save_pretrained

pytest.importorskip("safetensors")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("mnist1d_static", selection="random", seed=0).eval()


def test_without_huggingface_hub_a_hub_id_is_one_clear_error(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if missing
    with pytest.raises(MissingDependencyError, match=r"'runs/dnw' is no local folder .*hub\]'"):
        from_pretrained("runs/dnw")  # a mistyped local path reads as a Hub id: both are said
    with pytest.raises(MissingDependencyError, match=r"pip install 'dnwgraph\[hub\]'"):
        push_to_hub(model, "me/my-model")
    with pytest.raises(MissingDependencyError, match=r"pip install 'dnwgraph\[hub\]'"):
        model.push_to_hub("me/my-model")


def test_a_path_that_is_no_hub_id_is_never_looked_up(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(DNWGraphError, match="is missing"):
        from_pretrained(tmp_path / "runs" / "a" / "b")
    with pytest.raises(DNWGraphError, match="is missing"):
        from_pretrained("../not-a-hub-id")


def _cache(tmp_path, model, repo="someone--tiny", commit="a" * 40):
    """A Hugging Face cache holding one repository, laid out as huggingface_hub lays it."""
    folder = tmp_path / "cache" / f"models--{repo}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    save_pretrained(model, folder / "snapshots" / commit)
    return tmp_path / "cache"


def test_a_hub_id_loads_from_the_local_cache_offline(model, tmp_path):
    pytest.importorskip("huggingface_hub")
    cache = _cache(tmp_path, model)
    back = from_pretrained("someone/tiny", cache_dir=cache)
    x = torch.randn(2, 40)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    with pytest.raises(
        DNWGraphError,
        match="no local folder, and cannot be loaded from the local Hugging Face cache .*local_",
    ):
        from_pretrained("someone/other", cache_dir=cache)
    with pytest.raises(DNWGraphError, match="'local_files_only' must be True or False"):
        from_pretrained("someone/other", cache_dir=cache, local_files_only="no")


def test_push_to_hub_uploads_a_folder_that_loads(model, tmp_path, monkeypatch):
    """Through ModelHubMixin.push_to_hub, with its HfApi replaced: nothing goes online."""
    hub_mixin = pytest.importorskip("huggingface_hub.hub_mixin")
    calls = []

    class Repo:
        repo_id = "me/my-model"

    class OfflineApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create_repo", repo_id, private))
            return Repo()

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            calls.append(("upload_folder", repo_id))
            shutil.copytree(folder_path, tmp_path / "uploaded")
            return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(hub_mixin, "HfApi", OfflineApi)
    url = model.push_to_hub("me/my-model", private=True)
    assert url == "https://huggingface.co/me/my-model/commit/0"
    assert calls == [("create_repo", "me/my-model", True), ("upload_folder", "me/my-model")]
    files = sorted(p.name for p in (tmp_path / "uploaded").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    x = torch.randn(2, 40)
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path / "uploaded")(x), model(x))
    with pytest.raises(DNWGraphError, match="'repo_id' must be a Hub id 'owner/name'"):
        push_to_hub(model, "no id")
