"""Sweeps: grid expansion and names, resume redoes only the unfinished cell, summary statistics, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from maw_bench.commands import sweep as sweep_mod
from maw_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_grid_expansion_and_cell_names():
    spec = sweep_mod.load_sweep(ROOT / "configs" / "sweeps" / "depth_layers.yaml")
    cells = sweep_mod.expand(spec)
    maw = [c for c in cells if c.arm == "maw"]
    std = [c for c in cells if c.arm == "standard"]
    assert len(maw) == 3 * 2 * 2 * 3 and len(std) == 3
    assert len({c.name for c in cells}) == len(cells)
    assert "maw__depth-4__layers-m2_m1__selection-grpo__seed-2" in {c.name for c in maw}
    assert {c.name for c in std} == {"standard__seed-1", "standard__seed-2", "standard__seed-3"}
    assert all("/" not in c.name and not c.name.startswith(".") for c in cells)
    cell = next(c for c in maw if c.values["maw.layers"] == [-2, -1])
    cfg = spec.base.with_overrides(cell.overrides())
    assert cfg.maw.layers == [-2, -1] and cfg.maw.enabled and cfg.train.max_steps == 40


def test_cell_names_cannot_escape_the_folder():
    assert "/" not in sweep_mod.cell_name("maw", {"data.train": "../../etc/passwd"})
    assert not sweep_mod.cell_name("maw", {"x": "../.."}).startswith(".")


@pytest.mark.parametrize("body, needle", [
    ("grid: {}\n", "non-empty lists"),
    ("grid:\n  maw.dpeth: [1, 2]\n", "did you mean maw.depth"),
    ("grdi:\n  seed: [1]\n", "unknown sweep key 'grdi'"),
])
def test_bad_sweep_files(tmp_path, body, needle):
    path = tmp_path / "s.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=needle):
        sweep_mod.expand(sweep_mod.load_sweep(path))


def test_summary_statistics_by_hand():
    cells = [
        {"arm": "maw", "values": {"maw.depth": 2, "seed": 1}, "results": {"d": {"ndcg@10": 0.5}}},
        {"arm": "maw", "values": {"maw.depth": 2, "seed": 2}, "results": {"d": {"ndcg@10": 0.7}}},
        {"arm": "maw", "values": {"maw.depth": 2, "seed": 3}, "results": {"d": {"ndcg@10": 0.6}}},
        {"arm": "standard", "values": {"seed": 1}, "results": {"d": {"ndcg@10": 0.4}}},
    ]
    rows = {r["arm"]: r for r in sweep_mod.summarise_cells(cells, ["ndcg@10"])}
    assert rows["maw"]["ndcg@10"] == pytest.approx(0.6)
    assert rows["maw"]["ndcg@10_std"] == pytest.approx(0.1)  # sqrt(((-.1)^2 + .1^2 + 0) / 2)
    assert rows["maw"]["seeds"] == 3 and rows["maw"]["config"] == "maw.depth=2"
    assert rows["standard"]["ndcg@10_std"] == 0.0
    assert sweep_mod.mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))


def test_sweep_resumes_only_the_unfinished_cell(tiny_model, toy_beir, tmp_path, monkeypatch):
    from conftest import tiny_overrides

    from maw_bench.evaluation import pipeline
    from maw_bench.training import run as run_mod

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "t",
        "set": tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", f"eval.cache_dir={tmp_path / 'cache'}"),
        "datasets": [str(toy_beir)],
        "grid": {"maw.depth": [2, 4], "seed": [1]},
    }))
    trained: list[str] = []
    real_train = run_mod.train_arms

    def spy_train(cfg, arms, output, **kw):
        trained.append(output.parent.name)
        return real_train(cfg, arms, output, **kw)

    monkeypatch.setattr(run_mod, "train_arms", spy_train)
    real_eval = pipeline.run_evaluation
    state = {"fail": True}

    def flaky_eval(cfg, models, datasets, output, **kw):
        if state["fail"] and "depth-4" in str(output):
            raise KeyboardInterrupt  # the sweep is interrupted during this cell
        return real_eval(cfg, models, datasets, output, **kw)

    monkeypatch.setattr(pipeline, "run_evaluation", flaky_eval)
    out = tmp_path / "sw"
    with pytest.raises(KeyboardInterrupt):
        sweep_mod.run_sweep(sweep_file, out, dry_run=False)
    assert trained == ["maw__depth-2__seed-1", "maw__depth-4__seed-1"]
    state["fail"] = False
    trained.clear()
    sweep_mod.run_sweep(sweep_file, out, dry_run=False)
    assert trained == ["maw__depth-4__seed-1", "standard__seed-1"]  # the finished cell is skipped
    summary = (out / "summary.md").read_text()
    assert "maw.depth=4" in summary and "standard" in summary
    for png in ("loss_curves.png", "depth_histograms.png"):
        assert (out / png).stat().st_size > 1000
    assert list(out.glob("*_vs_depth.png")) and all(p.stat().st_size > 1000 for p in out.glob("*_vs_depth.png"))
    assert json.loads((out / "comparisons.json").read_text())


@pytest.mark.slow
def test_parallel_and_cluster_launchers_give_the_serial_summary(tiny_model, toy_beir, tmp_path):
    pytest.importorskip("submitit")
    from conftest import tiny_overrides

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "p", "datasets": [str(toy_beir)],
        "set": tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "train.deterministic=true",
                              f"eval.cache_dir={tmp_path / 'cache'}"),
        "grid": {"maw.depth": [2], "seed": [1]},
    }))
    serial = sweep_mod.run_sweep(sweep_file, tmp_path / "serial", dry_run=False)
    names = sorted(p.name for p in (serial / "cells").iterdir())
    assert len(names) == 2
    for launcher, jobs in (("local", 2), ("submitit-local", 1)):
        other = sweep_mod.run_sweep(sweep_file, tmp_path / launcher, dry_run=False, launcher=launcher, jobs=jobs)
        assert names == sorted(p.name for p in (other / "cells").iterdir())
        for name in names:
            a = json.loads((serial / "cells" / name / "cell.json").read_text())["results"]
            b = json.loads((other / "cells" / name / "cell.json").read_text())["results"]
            for dataset in a:
                for metric, value in a[dataset].items():
                    assert b[dataset][metric] == pytest.approx(value, abs=1e-6), (launcher, name, metric)
        assert (serial / "summary.csv").read_text() == (other / "summary.csv").read_text()
    assert set(json.loads((tmp_path / "submitit-local" / "jobs.json").read_text())) == set(names)
