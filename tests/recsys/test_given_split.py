"""Protocol ``given`` (a user-supplied split) and sampled candidate sets with AUC."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.evaluation import SplitFileError, evaluate, make_splits, parse_candidates, sample_negatives
from tests.conftest import synthetic_snapshot


def _pairs(snap, m):
    coo = m.tocoo()
    return [(str(snap.user_ids[r]), str(snap.item_ids[c])) for r, c in zip(coo.row, coo.col)]


def _write(path, pairs, extra=False):
    head = "user_id,item_id,kind,value,ts\n" if extra else "user_id,item_id\n"
    body = "".join(f"{u},{i},play,1,\n" if extra else f"{u},{i}\n" for u, i in pairs)
    path.write_text(head + body)


@pytest.fixture
def split_dir(tmp_path):
    snap = synthetic_snapshot()
    pairs = _pairs(snap, snap.interactions)
    rng = np.random.default_rng(0)
    part = rng.random(len(pairs))
    _write(tmp_path / "train.csv", [p for p, x in zip(pairs, part) if x < 0.7], extra=True)
    _write(tmp_path / "validation.csv", [p for p, x in zip(pairs, part) if 0.7 <= x < 0.8])
    _write(tmp_path / "test.csv", [p for p, x in zip(pairs, part) if x >= 0.8])
    return snap, tmp_path


def test_given_split_is_read_exactly(split_dir):
    snap, d = split_dir
    (s,) = make_splits(snap, "given", split_dir=d)
    tr, va, te = (set(_pairs(snap, m)) for m in (s.train, s.validation, s.test))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(_pairs(snap, snap.interactions))
    assert s.tune_train is s.train and s.exclude is s.validation  # validation: tuning / early stopping only


def test_without_validation_file_tuning_uses_part_of_train(split_dir):
    snap, d = split_dir
    (d / "validation.csv").unlink()
    (s,) = make_splits(snap, "given", split_dir=d)
    assert s.tune_train.nnz + s.validation.nnz == s.train.nnz and s.validation.nnz > 0


@pytest.mark.parametrize("line,expect", [
    ("u00,i_nope\n", "item_id: item not in the dataset"),
    ("nobody,i01\n", "user_id: user not in the dataset"),
])
def test_bad_rows_name_file_line_and_field(split_dir, line, expect):
    snap, d = split_dir
    text = (d / "test.csv").read_text()
    (d / "test.csv").write_text(text + line)
    n_lines = len((text + line).splitlines())
    with pytest.raises(SplitFileError, match=f"test.csv:{n_lines}:{expect}"):
        list(make_splits(snap, "given", split_dir=d))


def test_a_pair_not_in_the_dataset_or_in_two_files_is_an_input_error(split_dir):
    snap, d = split_dir
    seen = set(_pairs(snap, snap.interactions))
    missing = next((f"u00", f"i{j:02d}") for j in range(40) if ("u00", f"i{j:02d}") not in seen)
    (d / "validation.csv").write_text((d / "validation.csv").read_text() + f"{missing[0]},{missing[1]}\n")
    with pytest.raises(SplitFileError, match="validation.csv:.*:item_id: .*not an interaction"):
        list(make_splits(snap, "given", split_dir=d))
    first = (d / "validation.csv").read_text().splitlines()[1]
    (d / "validation.csv").write_text(f"user_id,item_id\n{first}\n{first}\n")
    with pytest.raises(SplitFileError, match="validation.csv:3:item_id: pair already in"):
        list(make_splits(snap, "given", split_dir=d))


def test_sampled_candidates_and_auc_on_a_given_split(split_dir):
    snap, d = split_dir
    out = evaluate(snap, "given", ["popular", "als"], ks=(5,), split_dir=d, candidates="sampled:10", repeats=3,
                   tune_params=False, params={"als": {"factors": 8, "iterations": 3}})
    assert out["protocol"] == "given" and out["candidates"] == "sampled:10"
    assert "10 items" in out["candidates_definition"] and "3 times" in out["candidates_definition"]
    for m in out["models"].values():
        assert 0.0 <= m["auc"] <= 1.0 and m["auc_sd"] >= 0.0 and m["repeats"] == 3
        assert 0.0 <= m["hr@5"] <= 1.0 and m["hr@5"] >= m["recall@5"] - 1e-12  # hits/min(|pos|,K) >= hits/|pos|
    full = evaluate(snap, "given", ["popular"], ks=(5,), split_dir=d, tune_params=False)
    assert full["candidates"] == "full" and "auc" not in full["models"]["popular"]


def test_auc_of_a_constant_scorer_is_one_half(split_dir):
    from tests.recsys.test_ties import ConstantModel
    from recsys.evaluation import _sampled_metrics

    snap, d = split_dir
    (s,) = make_splits(snap, "given", split_dir=d)
    model = ConstantModel().fit(snap.with_interactions(s.train))
    m = _sampled_metrics(model, None, s.test, snap.interactions, (5,), 10, 2, 0)
    assert m["auc"] == pytest.approx(0.5)
    # every positive ties with the 10 negatives: recall@5 = 5 / (|pos| + 10) per user, on average
    pos = np.diff(s.test.indptr)
    pos = pos[pos > 0]
    assert m["recall@5"] == pytest.approx(np.mean(5 / (pos + 10)))


def test_negatives_are_never_interacted_and_distinct():
    rng = np.random.default_rng(1)
    seen = np.array([0, 3, 4, 9])
    for _ in range(20):
        neg = sample_negatives(seen, 12, 6, rng)
        assert len(set(neg.tolist())) == 6 and not set(neg.tolist()) & set(seen.tolist()) and neg.max() < 12
    assert sorted(sample_negatives(seen, 12, 100, rng).tolist()) == [1, 2, 5, 6, 7, 8, 10, 11]


def test_candidate_spec_is_validated():
    assert parse_candidates("full") == ("full", None) and parse_candidates("sampled:1000") == ("sampled", 1000)
    for bad in ("sampled", "sampled:0", "sampled:x", "top"):
        with pytest.raises(ValueError):
            parse_candidates(bad)


def test_cli_given_split_sampled_json_and_exit_2_on_a_bad_row(tmp_path):
    from tests.api.test_cli import run_cli

    shop = tmp_path / "shop"
    shop.mkdir()
    rows = [(f"c{u}", f"p{(u * 7 + j * 3) % 25}") for u in range(20) for j in range(6)]
    rows = list(dict.fromkeys(rows))
    (shop / "interactions.csv").write_text("user_id,item_id,kind,value\n" + "".join(f"{u},{i},purchase,1\n" for u, i in rows))
    split = tmp_path / "split"
    split.mkdir()
    _write(split / "train.csv", rows[0::3] + rows[1::3])
    _write(split / "test.csv", rows[2::3])
    env = {"SOCIALREC_PSEUDONYM_KEY": "given-split-test-key-0123456789-abcdef"}  # strong enough for production
    args = ["evaluate", "--dataset", f"csv:{shop}", "--protocol", "given", "--split-dir", str(split), "--models", "popular,itemcf",
            "--candidates", "sampled:5", "--k", "3", "--no-tune", "--json", "--no-progress"]
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["protocol"] == "given" and out["candidates"] == "sampled:5"
    assert {"auc", "hr@3", "recall@3"} <= set(out["models"]["itemcf"])
    (split / "test.csv").write_text((split / "test.csv").read_text() + "c1,p999\n")
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 2
    assert f"test.csv:{len(rows[2::3]) + 2}:item_id" in r.stderr
