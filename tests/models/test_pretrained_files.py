"""Pretrained folders as files: nothing a user owns is replaced, writes are atomic, every
byte read is verified, stored masks agree with their budgets, and every malformed folder or
argument is one DNWGraphError."""

import errno
import hashlib
import json
import os
import re

import pytest
import torch

import dnwgraph
from dnwgraph import _atomic, create_model
from dnwgraph.errors import DNWGraphError
from dnwgraph.models import from_pretrained, save_pretrained

pytest.importorskip("safetensors")
from safetensors.torch import load_file, save_file  # noqa: E402


def reseal(folder, **changes):
    """Apply ``changes`` to config.json and recompute both checksums: a deliberate edit (an
    accidental one fails the checksums)."""
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    data = (folder / "model.safetensors").read_bytes()
    config["weights_sha256"] = hashlib.sha256(data).hexdigest()
    rest = {k: v for k, v in config.items() if k != "config_sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    config["config_sha256"] = hashlib.sha256(text).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))


def saved(tmp_path, name="m", **kwargs):
    torch.manual_seed(0)
    kwargs = kwargs if "selection" in kwargs else {"selection": "random", "seed": 0, **kwargs}
    model = create_model("mnist1d_static", **kwargs).eval()
    return model, save_pretrained(model, tmp_path / name)


def one_line_error(folder, match, **kwargs):
    with pytest.raises(DNWGraphError, match=match) as info:
        from_pretrained(folder, **kwargs)
    assert "\n" not in str(info.value)


# -- nothing a user owns is replaced or deleted ---------------------------------------------


def test_a_users_config_is_never_replaced_without_overwrite(tmp_path):
    model, _ = saved(tmp_path, "first")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"learning_rate": 0.1}')
    with pytest.raises(DNWGraphError, match=r"did not write \['config.json'\].*overwrite=True"):
        save_pretrained(model, folder)
    assert (folder / "config.json").read_text() == '{"learning_rate": 0.1}'
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    save_pretrained(model, folder, overwrite=True)
    assert torch.equal(from_pretrained(folder).head.weight, model.head.weight)


@pytest.mark.parametrize("name", [".hidden", "notes.txt", "sub", "model.safetensors"])
def test_any_other_file_is_refused_and_kept_even_with_overwrite(name, tmp_path):
    model, _ = saved(tmp_path, "first")
    folder = tmp_path / "mine"
    folder.mkdir()
    if name == "sub":
        (folder / name).mkdir()
    else:
        (folder / name).write_bytes(b"user data")
    with pytest.raises(DNWGraphError, match=f"did not write \\[{name!r}\\]"):
        save_pretrained(model, folder)
    save_pretrained(model, folder, overwrite=True)
    if name == "model.safetensors":  # explicitly replaced
        assert from_pretrained(folder) is not None
    else:
        assert (folder / name).exists() and (
            name == "sub" or (folder / name).read_bytes() == b"user data"
        )


def test_a_folder_save_pretrained_wrote_is_updated_in_place(tmp_path):
    _, folder = saved(tmp_path)
    other = create_model("mnist1d_static", selection="random", seed=5).eval()
    save_pretrained(other, folder)
    assert torch.equal(from_pretrained(folder).conv.active_mask(), other.conv.active_mask())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_a_folder_or_file_in_the_way_is_never_removed(tmp_path):
    model, _ = saved(tmp_path, "first")
    (tmp_path / "d" / "config.json").mkdir(parents=True)
    with pytest.raises(DNWGraphError, match="is a folder; save_pretrained never removes one"):
        save_pretrained(model, tmp_path / "d", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(DNWGraphError, match="needs a folder, and .* is a file"):
        save_pretrained(model, tmp_path / "f", overwrite=True)
    with pytest.raises(DNWGraphError, match="a file is in the way"):
        save_pretrained(model, tmp_path / "f" / "sub")
    assert (tmp_path / "f").read_text() == "x"


def test_a_failed_write_names_the_file_it_failed_on(tmp_path, monkeypatch):
    """Before: the message named the folder only, as if the folder itself were unwritable."""
    model = create_model("mnist1d_static", selection="random", seed=0).eval()

    def crash(tmp, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(_atomic, "_commit", crash)
    folder = tmp_path / "m"
    match = rf"^cannot save into '.*' \(No space left on device: {re.escape(str(folder))}/\S+\)$"
    with pytest.raises(DNWGraphError, match=match):
        save_pretrained(model, folder)


@pytest.mark.parametrize("failing", ["model.safetensors", "config.json"])
def test_a_failed_write_never_loads_a_mix_of_two_models(failing, tmp_path, monkeypatch):
    """A crash before the weights' rename leaves the old folder whole; between the two
    renames, the old config's checksum refuses the new weights. Saving again repairs it."""
    first, folder = saved(tmp_path, seed=0)
    second = create_model("mnist1d_static", selection="random", seed=9).eval()
    commit = _atomic._commit

    def crash(tmp, path):
        if path.name == failing:
            raise OSError("disk full")
        commit(tmp, path)

    monkeypatch.setattr(_atomic, "_commit", crash)
    with pytest.raises(DNWGraphError, match=r"^cannot save into '.*' \(disk full\)$"):
        save_pretrained(second, folder)
    monkeypatch.setattr(_atomic, "_commit", commit)
    if failing == "model.safetensors":
        back = from_pretrained(folder)
        assert torch.equal(back.conv.active_mask(), first.conv.active_mask())
    else:
        one_line_error(folder, "model.safetensors' does not match the checksum")
    save_pretrained(second, folder)
    assert torch.equal(from_pretrained(folder).conv.active_mask(), second.conv.active_mask())


_KILLED_SAVE = r"""
import os, signal, sys
import torch
from dnwgraph import _atomic, create_model
from dnwgraph.models import save_pretrained

folder, where = sys.argv[1], sys.argv[2]
fill, commit = _atomic._fill, _atomic._commit


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def fill_then_die(f, data):
    name = os.path.basename(f.name)
    if where.startswith("writing") and name.startswith("." + where.split()[1]):
        f.write(data[: len(data) // 2])
        f.flush()
        die()
    fill(f, data)


def commit_then_die(tmp, path):
    commit(tmp, path)
    if where == "between the renames" and path.name == "model.safetensors":
        die()


_atomic._fill, _atomic._commit = fill_then_die, commit_then_die
torch.manual_seed(0)
save_pretrained(create_model("mnist1d_static", selection="random", seed=9).eval(), folder)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
@pytest.mark.parametrize(
    "where", ["writing model", "writing config", "between the renames", "nowhere"]
)
def test_a_save_killed_anywhere_leaves_one_whole_model(where, tmp_path):
    """SIGKILL at any point of a save over an earlier one: the folder loads the old model or
    the new one; killed between the two renames, the new config is whole beside the new
    weights, and the error names it (nothing is lost)."""
    import subprocess
    import sys

    first, folder = saved(tmp_path, seed=0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", _KILLED_SAVE, str(folder), where]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == (0 if where == "nowhere" else -9), done.stderr
    second = create_model("mnist1d_static", selection="random", seed=9)
    if where == "between the renames":
        one_line_error(folder, r"they match '.*\.config\.tmp\.json'.*rename it to config\.json")
        os.replace(folder / ".config.tmp.json", folder / "config.json")
    back = from_pretrained(folder).conv.active_mask()
    new = where in ("between the renames", "nowhere")
    assert torch.equal(back, (second if new else first).conv.active_mask())
    save_pretrained(first, folder)  # a stale temporary file never blocks the next save
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_first_save_killed_between_its_renames_is_named_and_saved_again(tmp_path):
    """Before: the folder (new weights, the config only in its temporary file) said "its
    config.json is missing" without naming the config that finishes the save, and a second
    save refused the weights as a file it did not write."""
    import subprocess
    import sys

    folder = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", _KILLED_SAVE, str(folder), "between the renames"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".config.tmp.json", "model.safetensors"]
    one_line_error(
        folder,
        r"its config\.json is missing, and its model\.safetensors matches "
        r"'.*\.config\.tmp\.json'.*rename it to config\.json",
    )
    model = create_model("mnist1d_static", selection="random", seed=3).eval()
    save_pretrained(model, folder)  # no overwrite=True: those files are a save of ours
    assert torch.equal(from_pretrained(folder).conv.active_mask(), model.conv.active_mask())
    (folder / "config.json").unlink()  # weights without a config: not ours any more
    with pytest.raises(DNWGraphError, match=r"did not write \['model\.safetensors'\]"):
        save_pretrained(model, folder)


_PAUSED_FIRST_SAVE = r"""
import os, sys, time
from dnwgraph import _atomic, create_model

folder, paused = sys.argv[1], sys.argv[2]
commit = _atomic._commit


def commit_then_pause(tmp, path):  # between the two renames, holding the folder's lock
    commit(tmp, path)
    if path.name == "model.safetensors":
        open(paused, "w").close()
        time.sleep(3)  # the load starts meanwhile


_atomic._commit = commit_then_pause
create_model("mnist1d_static", selection="random", seed=5).save_pretrained(folder)
"""


@pytest.mark.skipif(os.name != "posix", reason="the folder lock is POSIX flock")
def test_a_load_during_a_first_save_waits_for_it(tmp_path):
    """Before the reader's lock covered the checks: a load between a first save's two renames
    said the save had been stopped (and to rename its config, racing the writer)."""
    import subprocess
    import sys
    import time

    folder, paused = tmp_path / "m", tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", _PAUSED_FIRST_SAVE, str(folder), str(paused)]
    saver = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    while not paused.exists():
        assert saver.poll() is None, saver.stderr.read()
        time.sleep(0.05)
    assert not (folder / "config.json").exists()  # the load starts between the renames
    model = from_pretrained(folder)
    assert saver.wait(timeout=600) == 0, saver.stderr.read()
    expected = create_model("mnist1d_static", selection="random", seed=5)
    assert torch.equal(model.conv.active_mask(), expected.conv.active_mask())


_LOAD_DURING_SAVE = r"""
import os, subprocess, sys, time
from dnwgraph.models import _folder, from_pretrained

folder, marker, saver = sys.argv[1], sys.argv[2], sys.argv[3:]
read = _folder.read_bytes
started = []


def read_then_let_a_save_run(path, *args, **kwargs):
    data = read(path, *args, **kwargs)
    if path.name == "model.safetensors" and not started:
        started.append(subprocess.Popen([*saver, folder, marker]))  # a save between our reads
        while not os.path.exists(marker):  # it has built its model and calls save_pretrained
            time.sleep(0.05)
        time.sleep(2)  # a save takes well under a second: without the lock it is done by now
        assert started[0].poll() is None, "the save did not wait for the load"
    return data


_folder.read_bytes = read_then_let_a_save_run
from_pretrained(folder)
assert started[0].wait(timeout=600) == 0
from_pretrained(folder)
print("ok")
"""


@pytest.mark.skipif(os.name != "posix", reason="the folder lock is POSIX flock")
def test_a_load_never_reads_the_weights_of_one_save_and_the_config_of_the_next(tmp_path):
    """Before: a save landing between the load's reads of the weights and the config made
    the load report the weights "changed or damaged"; the load now holds a reader's lock."""
    import subprocess
    import sys

    _, folder = saved(tmp_path, seed=0)
    save = (
        "import dnwgraph, pathlib, sys; m = dnwgraph.create_model('mnist1d_static', "
        "selection='random', seed=5); pathlib.Path(sys.argv[2]).touch(); "
        "m.save_pretrained(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    marker = str(tmp_path / "saving")
    argv = [sys.executable, "-c", _LOAD_DURING_SAVE, str(folder), marker, sys.executable, "-c"]
    argv.append(save)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


_SAVE_WHEN_TOLD = r"""
import os, sys, time
import torch
from dnwgraph import _atomic, create_model
from dnwgraph.models import save_pretrained

folder, seed, writing, go = sys.argv[1], int(sys.argv[2]), sys.argv[3] + "1", sys.argv[3] + "2"


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.05)


def fill_slowly(f, data):  # the first saver, mid-write, lets the second one save
    f.write(data[: len(data) // 2])
    f.flush()
    open(writing, "w").close()
    wait_for(go)
    time.sleep(4)  # the second saver builds its model and reaches its writes meanwhile
    f.write(data[len(data) // 2 :])
    _atomic._fill = fill


model = create_model("mnist1d_static", selection="random", seed=seed).eval()
fill = _atomic._fill
if seed == 1:
    _atomic._fill = fill_slowly
else:
    wait_for(writing)
    open(go, "w").close()
save_pretrained(model, folder)
"""


@pytest.mark.skipif(os.name != "posix", reason="the folder lock is POSIX flock")
def test_two_processes_saving_into_one_folder_at_once_take_turns(tmp_path):
    """Both wrote the same temporary files: the second truncated the first's half-written
    weights and renamed them, the first then crashed on its rename (FileNotFoundError) or left
    a torn file. Now the second waits for the first, and the folder holds its model whole."""
    import subprocess
    import sys

    folder, go = tmp_path / "m", tmp_path / "step"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start(seed):
        argv = [sys.executable, "-c", _SAVE_WHEN_TOLD, str(folder), str(seed), str(go)]
        return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)

    first = start(1)
    second = start(2)
    results = [(p.wait(timeout=600), p.stderr.read()) for p in (first, second)]
    assert [code for code, _ in results] == [0, 0], results
    back = from_pretrained(folder).conv.active_mask()
    last = create_model("mnist1d_static", selection="random", seed=2)
    assert torch.equal(back, last.conv.active_mask())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


# -- every byte read is verified --------------------------------------------------------------


@pytest.mark.parametrize("where", [0, 8, 100, -1, "middle"])
def test_one_flipped_byte_in_the_weights_is_refused(where, tmp_path):
    _, folder = saved(tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    i = len(data) // 2 if where == "middle" else where
    data[i] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    one_line_error(folder, "model.safetensors' does not match the checksum in config.json")


def test_one_changed_value_in_the_config_is_refused(tmp_path):
    _, folder = saved(tmp_path, seed=3)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text.replace('"seed": 3', '"seed": 2'))
    one_line_error(folder, "config.json' does not match its checksum")


def test_a_folder_of_format_1_says_to_save_again(tmp_path):
    _, folder = saved(tmp_path)
    reseal(folder, format="dnwgraph-pretrained/1")
    one_line_error(folder, "got 'dnwgraph-pretrained/1'.*written before checksums")


@pytest.mark.parametrize(
    "name, renamed",
    [
        ("mnist1d_static", lambda k: k.replace("executor.", "graph.", 1)),
        (
            "mobilenetv1_dnw_x225",
            lambda k: re.sub(
                r"node_ops\.(\d+)\.",
                lambda m: "input_op." if m[1] == "0" else f"level_ops.{int(m[1]) - 1}.",
                k,
            ),
        ),
    ],
)
def test_a_folder_written_with_the_former_module_names_is_one_line(name, renamed, tmp_path):
    """Weights saved when the static model's executor was ``graph`` and the MobileNet stages
    held ``input_op`` / ``level_ops`` are refused, the keys named (no renaming)."""
    torch.manual_seed(0)
    kwargs = {"stages": ((4, 6, 1, 1), (6, 8, 2, 2))} if name.startswith("mobilenet") else {}
    model = create_model(name, **kwargs).eval()
    folder = save_pretrained(model, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    former = {renamed(k): v for k, v in tensors.items()}
    assert former.keys() != tensors.keys()
    save_file(former, folder / "model.safetensors", metadata={"format": "pt"})
    reseal(folder)
    moved = [k for k in model.state_dict() if renamed(k) != k]  # in the model's order
    weights = re.escape(repr(str(folder / "model.safetensors")))
    one_line_error(
        folder,
        rf"^{weights} does not fit {type(model).__name__}: \d+ keys missing "
        rf"\('{re.escape(moved[0])}'.*\), \d+ keys unexpected "
        r"\('[^']*(graph|input_op|level_ops)\.",
    )


# -- stored state that disagrees with itself --------------------------------------------------


def _edit_tensors(folder, **tensors):
    state = load_file(folder / "model.safetensors")
    state.update(tensors)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    reseal(folder)


def test_an_all_false_stored_mask_is_refused(tmp_path):
    _, folder = saved(tmp_path)
    _edit_tensors(folder, **{"executor.conv.selection.mask": torch.zeros(41_984, dtype=torch.bool)})
    one_line_error(
        folder, r"stored 'random' mask .* selects 0 of 41984 edges, but its budget is k=2048"
    )


def test_a_ratio_edited_in_the_config_is_refused(tmp_path):
    _, folder = saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    reseal(folder, kwargs={**config["kwargs"], "ratio": 100})
    one_line_error(folder, "selects 2048 of 41984 edges, but its budget is k=100")


def test_a_per_node_mask_must_meet_every_nodes_budget(tmp_path):
    model, folder = saved(tmp_path, scope="per_node", ratio=0.25)
    target = model.conv.selection.target
    mask = model.conv.selection.mask.clone()
    on = int(mask.nonzero()[0, 0])
    off = int((~mask & (target != target[on])).nonzero()[0, 0])
    mask[on], mask[off] = False, True  # the same count, one edge moved to another node
    _edit_tensors(folder, **{"executor.conv.selection.mask": mask})
    one_line_error(folder, "stored 'random' mask")


def test_an_empty_fixed_mask_is_refused_at_save_and_load(tmp_path):
    mask = torch.zeros(41_984, dtype=torch.bool)
    mask[:10] = True
    model, folder = saved(tmp_path, selection="fixed", mask=mask)
    _edit_tensors(folder, **{"executor.conv.selection.mask": torch.zeros_like(mask)})
    one_line_error(folder, "stored 'fixed' mask .* selects 0 of 41984 edges")
    model.conv.selection.mask.zero_()
    with pytest.raises(DNWGraphError, match="stored 'fixed' mask .* selects 0"):
        save_pretrained(model, tmp_path / "again")


def test_non_finite_weights_are_refused_at_save_and_load(tmp_path):
    model, folder = saved(tmp_path)
    weight = load_file(folder / "model.safetensors")["head.weight"]
    weight[0, 0] = float("nan")
    _edit_tensors(folder, **{"head.weight": weight})
    one_line_error(folder, "'head.weight' holds NaN or infinite values")
    with torch.no_grad():
        model.head.bias[0] = float("inf")
    with pytest.raises(DNWGraphError, match="'head.bias' holds NaN or infinite values"):
        save_pretrained(model, tmp_path / "again")


# -- malformed folders and arguments: one line each -------------------------------------------


CONFIG_EDITS = {
    "a list": ([1, 2], "expected format .* got 'list'"),
    "unknown key": ({"foo": 1}, r"unknown keys \['foo'\]"),
    "name not str": ({"name": 3}, "'name' must be a str or null"),
    "unknown model": ({"name": "nope"}, "does not build 'nope'.*unknown model"),
    "kwargs list": ({"kwargs": [1]}, "'kwargs' must be a mapping"),
    "args mapping": ({"args": {"a": 1}}, "'args' must be a list"),
    "unknown keyword": ({"kwargs": {"ratoi": 3}}, "does not build 'mnist1d_static'.*ratoi"),
    "bad value": ({"kwargs": {"selection": 5}}, "does not build.*unknown selection 5"),
    "huge int": ({"kwargs": {"num_classes": 10**30}}, "does not build 'mnist1d_static'"),
    "unknown tag": ({"kwargs": {"x": {"$eval": "1"}}}, r"'kwargs.x' must be a value or a one-key"),
    "missing tensor": ({"kwargs": {"mask": {"$tensor": "nope"}}}, "names the tensor 'nope'"),
    "foreign class": ({"name": None, "class": "Module"}, "'class' must be null or one of"),
    "name and class": ({"class": "StaticNeuralGraph"}, "'name' must be set when 'class' is null"),
    "bad dtype": ({"torch_dtype": "int8"}, "'torch_dtype' must be one of"),
    "dtype list": ({"torch_dtype": ["float32"]}, "'torch_dtype' must be one of"),
    "dtype mapping": ({"torch_dtype": {}}, "'torch_dtype' must be one of"),
    "class list": ({"name": None, "class": ["Module"]}, "'class' must be null or one of"),
    "bad wiring": (
        {
            "name": None,
            "class": "StaticNeuralGraph",
            "args": [{"$wiring": {"edge_index": [[0, 1]]}}, 2],
        },
        r"'args.0' is not a valid wiring: 'edge_index' must have shape \[2, E\]",
    ),
    "args not a wiring": (
        {"name": None, "class": "StaticNeuralGraph", "args": ["x", "y"], "kwargs": {}},
        r"does not build 'StaticNeuralGraph' \(DNWGraphTypeError: 'wiring' must be a Wiring",
    ),
    "unknown stem": (
        {"kwargs": {"stem": {"$stem": {"name": "os.system", "kwargs": {}}}}},
        "'kwargs.stem' is not a valid stem",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_EDITS))
def test_every_malformed_config_is_one_line(case, tmp_path):
    _, folder = saved(tmp_path)
    change, match = CONFIG_EDITS[case]
    if isinstance(change, dict):
        reseal(folder, **change)
    else:
        (folder / "config.json").write_text(json.dumps(change))
    one_line_error(folder, match)


RAW_CONFIGS = {
    "empty": (b"", "config.json.: not valid JSON"),
    "binary": (bytes(range(256)), r"is not UTF-8 text \(byte 0x80 at offset 128\)"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    "NaN": (b'{"format": NaN}', "NaN is not a JSON number"),
    "duplicate key": (b'{"name": "a", "name": "b"}', "the key 'name' appears twice"),
    "huge": (b" " * (2 << 20), "bytes; a dnwgraph config.json is under"),
}


@pytest.mark.parametrize("case", sorted(RAW_CONFIGS))
def test_every_unreadable_config_is_one_line(case, tmp_path):
    _, folder = saved(tmp_path)
    data, match = RAW_CONFIGS[case]
    (folder / "config.json").write_bytes(data)
    one_line_error(folder, match)


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"garbage", "half"])
def test_empty_or_truncated_weights_are_one_line(data, tmp_path):
    _, folder = saved(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000] if data == "half" else data)
    one_line_error(folder, "does not match the checksum")
    reseal(folder)  # even with a matching checksum, the reader names the damage
    one_line_error(folder, "model.safetensors' is corrupt or truncated")


def _special(folder, name, kind):
    path = folder / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "self link":
        os.symlink(path, path)
    elif kind == "broken link":
        os.symlink(folder / "nowhere", path)
    return {
        "fifo": "is a FIFO",
        "folder": "is a folder",
        "self link": "cannot be opened",
        "broken link": "is a broken symlink",
        "missing": "is missing",
    }[kind]


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and symlinks")
@pytest.mark.parametrize("kind", ["fifo", "folder", "self link", "broken link", "missing"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_special_files_are_named_never_opened(kind, name, tmp_path):
    _, folder = saved(tmp_path)
    what = _special(folder, name, kind)
    one_line_error(folder, f"its {name} {what}")
    assert dnwgraph.models.pretrained.is_pretrained_dir(folder)  # load_model reaches it


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_the_folder_itself_may_be_anything(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    one_line_error(tmp_path / "file", "'.*file' is a file")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    one_line_error(tmp_path / "loop", "cannot be opened")
    one_line_error(tmp_path / "runs/a/b", "is missing")
    # a name too long for the file system: Path.is_dir raised a bare OSError on Python 3.11
    one_line_error(tmp_path / ("x" * 300), r"cannot be opened \(File name too long\)")
    with pytest.raises(DNWGraphError, match="no checkpoint at"):
        dnwgraph.load_model(tmp_path / ("x" * 300))
    monkeypatch.chdir(tmp_path)
    one_line_error(".", "its config.json is missing")
    one_line_error("a\0b", "must not hold a NUL byte")
    with pytest.raises(DNWGraphError, match="'save_directory' must be a folder path"):
        save_pretrained(saved(tmp_path)[0], "a\0b")
    for bad in (3, None, b"/tmp"):
        with pytest.raises(
            dnwgraph.errors.DNWGraphTypeError, match="must be a folder path or a Hub id"
        ):
            from_pretrained(bad)


def test_an_empty_path_is_refused_not_read_as_the_working_directory(tmp_path, monkeypatch):
    """``Path("")`` is ``.``: an unset variable would save into (or load) the working folder."""
    model, _ = saved(tmp_path)
    monkeypatch.chdir(tmp_path / "m")
    one_line_error("", "'pretrained_model_name_or_path' must be a folder path or a Hub id")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(DNWGraphError, match="'save_directory' must be a folder path .got ''"):
        save_pretrained(model, "")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize(
    "map_location, match",
    [
        (3, "must be a str such as 'cpu'"),
        (None, "must be a str such as 'cpu'"),
        (["cpu"], "must be a str such as 'cpu'"),
        ("tpu", "must name a device such as 'cpu'"),
        ("meta", "cannot be 'meta'"),
        ("cuda:99", "'cuda:99' is not available here"),
    ],
)
def test_a_bad_map_location_is_one_line(map_location, match, tmp_path):
    _, folder = saved(tmp_path)
    one_line_error(folder, match, map_location=map_location)
    with pytest.raises(DNWGraphError, match=match):
        dnwgraph.load_model(folder, map_location=map_location)


def test_bad_keyword_values_are_one_line(tmp_path):
    model, folder = saved(tmp_path)
    one_line_error(folder, "'strict' must be True or False", strict="no")
    with pytest.raises(DNWGraphError, match="'overwrite' must be True or False"):
        save_pretrained(model, folder, overwrite="yes")
    with pytest.raises(dnwgraph.errors.DNWGraphTypeError, match="'model' must be an nn.Module"):
        save_pretrained("mnist1d_static", folder)
