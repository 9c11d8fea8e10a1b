"""benchmarks/dnw_dynamics.py: each variant changes what it says and nothing else (checked by
value on one or two SGD steps of a real preset), the test beds are the data they say, the grid
keeps dev and held-out apart, the choice follows its rule, the section says what is done."""

from __future__ import annotations

import argparse

import pytest
import torch


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("dnw_dynamics")


@pytest.fixture(scope="module")
def sb(script):
    import strongest_baseline  # on the path once dnw_dynamics is loaded

    return strongest_baseline


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding of one SGD step (far below any change a variant makes)."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def _steps(script, sb, arm: str, steps: int) -> list[dict]:
    """``steps`` steps of the plain loop's optimizer with the arm's hook on
    ``mnist1d_static``; per step the weights, gradient, mask and momentum before it, and the
    weights after it."""
    model, hook = script.build(arm, "mnist1d_static", 0)
    params = model.parameters() if hook is None else hook.param_groups(model)
    opt = torch.optim.SGD(params, lr=sb.LR, momentum=sb.MOMENTUM, weight_decay=sb.WEIGHT_DECAY)
    w = model.conv.edge_weight
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        x, y = torch.randn(16, 40, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        buf = opt.state.get(w, {}).get("momentum_buffer")
        rec = dict(w=w.detach().clone(), grad=w.grad.clone(), used=model.conv.active_mask().clone(),
                   buf=None if buf is None else buf.clone())  # fmt: skip
        if hook is not None:
            hook.before_step(opt)
        rec["hooked_grad"] = w.grad.clone()
        opt.step()
        rec["after"] = w.detach().clone()
        out.append(rec)
    return out


def test_the_control_and_the_baselines_run_the_plain_loop(script):
    for arm in ("dnw", "reselect_10", "random_defaults", "random_reference"):
        assert script.build(arm, "mnist1d_static", 0)[1] is None, arm
    model, _ = script.build("random_reference", "mnist1d_static", 3)
    assert model.conv.selection.name == "random" and model.conv.selection.seed == 3
    assert model.conv.fan_in == "candidates"
    model, _ = script.build("reselect_10", "mnist1d_static", 0)
    assert model.conv.selection.name == "dnw_periodic" and model.conv.selection.frequency == 10
    assert all(script.VARIANTS[v].changes_loop for v in script.VARIANTS if "_selected" in v)


def test_decay_selected_only_leaves_the_unused_weights_undecayed(script, sb, monkeypatch):
    monkeypatch.setattr(sb, "WEIGHT_DECAY", 0.1)  # the hook reads it: decay far above rounding
    (s,) = _steps(script, sb, "decay_selected_only", 1)
    lr, wd, used = sb.LR, sb.WEIGHT_DECAY, s["used"]
    # first step: the momentum buffer is the step's gradient, the update lr times it
    close(s["after"][~used], s["w"][~used] - lr * s["grad"][~used])
    close(s["after"][used], s["w"][used] - lr * (s["grad"][used] + wd * s["w"][used]))
    # what SGD's own decay would have done to the unused weights is far outside the tolerance
    assert (lr * wd * s["w"][~used]).abs().max() > 1e-3


def test_momentum_selected_only_zeroes_the_unused_edges_buffer(script, sb):
    first, second = _steps(script, sb, "momentum_selected_only", 2)
    lr, mu, wd, used = sb.LR, sb.MOMENTUM, sb.WEIGHT_DECAY, second["used"]
    d = second["grad"] + wd * second["w"]
    # unused: a plain SGD step on this step's gradient; used: the momentum of the last step
    close(second["after"][~used], second["w"][~used] - lr * d[~used])
    close(second["after"][used], second["w"][used] - lr * (mu * second["buf"][used] + d[used]))
    # the buffer held momentum for the unused edges that plain SGD would have added
    assert (lr * mu * second["buf"][~used]).abs().max() > 1e-4
    assert torch.equal(second["hooked_grad"], second["grad"])  # the gradient itself untouched


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_the_straight_through_scale_reaches_the_unused_edges_only(script, sb, scale):
    (s,) = _steps(script, sb, f"st_scale_{scale:g}", 1)
    used = s["used"]
    assert int(used.sum()) == script.build("dnw", "mnist1d_static", 0)[0].conv.k
    assert s["grad"][~used].abs().max() > 0  # DNW gives the unused edges a gradient
    assert torch.equal(s["hooked_grad"][used], s["grad"][used])
    assert torch.equal(s["hooked_grad"][~used], scale * s["grad"][~used])


def test_the_control_steps_as_plain_sgd(script, sb):
    first, second = _steps(script, sb, "dnw", 2)
    lr, mu, wd = sb.LR, sb.MOMENTUM, sb.WEIGHT_DECAY
    d = second["grad"] + wd * second["w"]
    close(second["after"], second["w"] - lr * (mu * second["buf"] + d))


def test_reselect_10_holds_the_mask_for_10_steps(script, sb):
    steps = _steps(script, sb, "reselect_10", 11)
    masks = [s["used"] for s in steps]
    assert all(torch.equal(m, masks[0]) for m in masks[:10])
    # at state 10 the top-k of the moved weights is chosen again
    top = torch.zeros_like(masks[0])
    top[steps[10]["w"].abs().argsort(descending=True)[: int(masks[0].sum())]] = True
    assert torch.equal(masks[10], top)


def test_the_test_beds_are_the_data_they_say(script, sb, monkeypatch):
    import dnwgraph.train

    x = torch.arange(4000.0).view(4000, 1)
    monkeypatch.setattr(sb, "load_data", lambda kind, draw: (x, x[:, 0].long(), x[:5], x[:5, 0]))
    script.load_data.cache_clear()
    xs, ys, xt, _ = script.load_data("digits_1k", 11)
    assert xs.shape == (1000, 1) and torch.equal(ys, torch.arange(1000)) and len(xt) == 5
    seen, real = {}, dnwgraph.train.create_dataset

    def fake(name, **options):
        seen.update(name=name, **options)
        return real(name, num_samples=40, **options)

    monkeypatch.setattr(dnwgraph.train, "create_dataset", fake)
    script.load_data.cache_clear()
    xs, *_ = script.load_data("mnist1d_noisy", 12)
    assert seen == {"name": "mnist1d", "data_seed": 112, "iid_noise_scale": 0.05}
    assert xs.shape == (32, 40)
    script.load_data.cache_clear()


def _args(script, phase, **kw):
    base = dict(phase=phase, testbeds=list(script.TESTBEDS), variants=list(script.VARIANTS),
                epochs=None)  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_the_grid_keeps_dev_and_held_out_apart(script):
    dev = list(script.grid(_args(script, "dev"), {}))
    assert len(dev) == 2 * 2 * len(script.VARIANTS) == 24
    assert [script.key(j) for j in dev[:2]] == [
        ("digits_1k", "dnw", "10", "0", "40"),
        ("digits_1k", "decay_selected_only", "10", "0", "40"),
    ]
    chosen = {"digits_1k": ["st_scale_2"]}
    held = list(script.grid(_args(script, "confirm"), chosen))
    # digits: the choice, dnw, 2 randoms and (tiny_static's defaults changed in 0.3.0) DNW and
    # random with today's; mnist1d: no choice, MNIST-1D presets still have 0.2's defaults
    assert len(held) == 9 * 6 + 9 * 3
    assert [j["arm"] for j in held[:6]] == [
        "st_scale_2",
        "dnw",
        "random_defaults",
        "random_reference",
        "dnw_package",
        "random_package",
    ]
    assert {(j["draw"], j["seed"]) for j in dev}.isdisjoint({(j["draw"], j["seed"]) for j in held})
    assert {j["draw"] for j in dev}.isdisjoint({j["draw"] for j in held})
    assert {j["seed"] for j in dev}.isdisjoint({j["seed"] for j in held})


def _rec(arm, draw, seed, acc, phase="dev", testbed="digits_1k", epochs=40):
    return dict(testbed=testbed, arm=arm, phase=phase, draw=draw, seed=seed, epochs=epochs,
                acc=acc, curve=[acc - 1, acc], time_s=60.0)  # fmt: skip


def test_the_choice_is_the_largest_positive_dev_gap_once_dev_is_complete(script):
    gains = {"dnw": 0.0, "decay_selected_only": 0.5, "momentum_selected_only": -1.0,
             "st_scale_0.5": 1.5, "st_scale_2": 1.0, "reselect_10": -0.2}  # fmt: skip
    records = [_rec(a, 10, s, 90.0 + s + g) for a, g in gains.items() for s in (0, 1)]
    why = "st_scale_0.5 (+1.50 over DNW on the dev runs)"
    assert script.choose(records, "digits_1k") == ("st_scale_0.5", why)
    assert script.choose(records[:-1], "digits_1k")[0] is None  # reselect_10 has 1 of 2
    assert "reselect_10 not complete" in script.choose(records[:-1], "digits_1k")[1]
    behind = [_rec(a, 10, s, 90.0 - abs(g)) for a, g in gains.items() for s in (0, 1)]
    assert script.choose(behind, "digits_1k") == (
        None,
        "no variant ahead of DNW on the dev runs (best: reselect_10 -0.20)",
    )
    # a held-out run or a run at other epochs is not a dev run
    moved = [{**r, "epochs": 3} if r["arm"] == "st_scale_0.5" else r for r in records]
    assert script.choose(moved, "digits_1k")[0] is None


def test_the_section_labels_partial_cells_and_gives_a_verdict_only_when_complete(script, tmp_path):
    pairs = [(d, s) for d in (11, 12, 13) for s in (2, 3, 4)]
    records = [_rec("dnw", d, s, 90.0 + s, "confirm") for d, s in pairs]
    records += [_rec("random_defaults", d, s, 85.0 + s, "confirm") for d, s in pairs]
    records += [_rec("random_reference", d, s, 86.0 + s, "confirm") for d, s in pairs[:4]]
    records += [_rec("st_scale_2", d, s, 91.0, "confirm") for d, s in pairs[:2]]
    records += [_rec("dnw", 10, 0, 50.0, epochs=1)]  # a smoke run: not shown
    text = script.section(records, tmp_path / "r.jsonl")
    assert "(25 runs, 0.4 CPU hours, one thread a run; 1 at other epoch counts, not shown)" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| digits_1k")]
    # the stronger random graph by its mean: the reference (4 runs, mean 88.75) over 88.0
    by = {(r[1], r[3]): r for r in rows}
    ref = by[("dnw", "random_reference (stronger)")]
    assert ref[5:9] == ["+4.00 [+4.00, +4.00]", "4 of 4", "", "in progress (4 of 9) |"]
    variant = by[("st_scale_2", "dnw")]
    # gaps -1 and -2: mean -1.5, sd 0.71, t(0.975, 1) = 12.71: half-width 6.35
    assert variant[5:9] == ["-1.50 [-7.85, +4.85]", "0 of 2", "", "in progress (2 of 9) |"]
    assert "digits_1k: dev in progress" in text
    records = [r for r in records if r["arm"] != "random_reference"]
    text = script.section(records, tmp_path / "r.jsonl")
    row = next(
        line for line in text.splitlines() if "| dnw | " in line and "random_defaults" in line
    )
    assert "| +5.00 [+5.00, +5.00] | 9 of 9 | DNW ahead | complete |" in row


def test_todays_defaults_are_asked_where_they_differ_and_count_as_a_baseline(script, tmp_path):
    """digits_1k (tiny_static, eps 1e-5 since 0.3.0) gets DNW and random with today's
    defaults; the stronger random graph may be today's; mnist1d_noisy gets neither."""
    assert script.package_arms("digits_1k") == ["dnw_package", "random_package"]
    assert script.package_arms("mnist1d_noisy") == []
    pairs = [(d, s) for d in (11, 12, 13) for s in (2, 3, 4)]
    gaps = {"dnw": 90.0, "random_defaults": 85.0, "random_reference": 88.0,
            "random_package": 89.0, "dnw_package": 89.5}  # fmt: skip
    records = [_rec(a, d, s, acc + s / 10, "confirm") for a, acc in gaps.items() for d, s in pairs]
    text = script.section(records, tmp_path / "r.jsonl")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| digits_1k")]
    by = {(r[1], r[3]): r for r in rows}
    assert set(by) == {
        ("dnw", "random_package (stronger)"),
        ("dnw_package", "dnw"),
        ("dnw_package", "random_package (stronger)"),
    }
    assert by[("dnw_package", "random_package (stronger)")][5:8] == [
        "+0.50 [+0.50, +0.50]",
        "9 of 9",
        "today's DNW ahead",
    ]
    assert by[("dnw_package", "dnw")][7] == "**0.2's DNW ahead**"
