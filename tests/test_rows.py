"""Training rows through HF datasets: local .jsonl/.parquet/.csv files, column mapping, one-line errors."""

from __future__ import annotations

import json
import random

import pytest
from conftest import WORDS, tiny_overrides

from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError


def _rows(n: int = 64) -> list[dict]:
    rng = random.Random(7)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) for _ in range(n)]
    return [{"q": " ".join(rng.sample(d.split(), 4)), "pos": d, "neg1": docs[(i + 1) % n], "neg2": docs[(i + 2) % n]}
            for i, d in enumerate(docs)]


def _write(path, rows: list[dict], names: dict[str, str]):
    import pandas as pd

    frame = pd.DataFrame([{names.get(k, k): v for k, v in r.items()} for r in rows])
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix, names, columns, negatives", [
    (".jsonl", {"q": "anchor", "pos": "positive", "neg1": "negative"}, [], 1),  # sentence-transformers' triplets
    (".parquet", {"q": "query", "pos": "positive", "neg1": "negative_1", "neg2": "negative_2"}, [], 2),
    (".csv", {"q": "claim", "pos": "evidence", "neg1": "wrong"}, ["data.columns.query=claim",
                                                               "data.columns.positive=evidence",
                                                               "data.columns.negatives=[wrong]"], 1),
])
def test_training_from_row_files(tiny_model, toy_beir, tmp_path, suffix, names, columns, negatives):
    from maw_bench.training.run import prepare_data, train_arms

    rows = _rows()
    if "neg2" not in names:
        rows = [{k: v for k, v in r.items() if k != "neg2"} for r in rows]
    path = _write(tmp_path / f"rows{suffix}", rows, names)
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, f"data.train={path}", "train.max_steps=3",
                                                        f"train.negatives={negatives}", *columns))
    _, examples, info = prepare_data(cfg)
    assert len(examples) == 3 * 8 and all(len(e.negative_ids) == negatives for e in examples)  # rows read: steps x batch
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    for arm in ("standard", "maw"):
        log = [json.loads(x) for x in (tmp_path / "run" / arm / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == [1, 2, 3]
    assert info["train"]["id"] == f"rows/{path}"


def test_a_missing_column_names_the_columns_that_exist(tiny_model, toy_beir, tmp_path):
    from maw_bench.training.run import prepare_data

    path = _write(tmp_path / "rows.jsonl", _rows(), {"q": "text_a", "pos": "text_b"})
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, f"data.train={path}"))
    with pytest.raises(UserError, match="no query column among text_a, text_b, neg1, neg2; map one with data.columns"):
        prepare_data(cfg)
    cfg = cfg.with_overrides(["data.columns.query=text_a", "data.columns.positive=txt_b"])
    with pytest.raises(UserError, match="data.columns.positive='txt_b' is not a column; the rows have text_a, text_b"):
        prepare_data(cfg)


def test_hub_rows_offline_fail_in_one_line(tiny_model, toy_beir):
    from maw_bench.training.run import prepare_data

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "data.train=hf:someone/no-such-rows@train"))
    with pytest.raises(UserError, match="cannot read training rows hf:someone/no-such-rows@train"):
        prepare_data(cfg)
