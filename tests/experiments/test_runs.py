"""Final runs and tuning studies of the baselines through the same code as GRU4Rec's: seeds,
aggregation, tie mode, the baselines' search spaces."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import tuning
from experiments.runs import final_run
from gru4rec.baselines import BASELINES
from gru4rec.errors import ParameterError

DATA = Path(__file__).resolve().parents[1] / "data" / "baselines"
TRAIN, TEST = DATA / "diginetica_train.tsv", DATA / "diginetica_test.tsv"


def test_a_seeded_baseline_runs_once_per_seed_and_aggregates(tmp_path):
    out = final_run(
        TRAIN, TEST, {}, tmp_path, model="random", cutoffs=range(1, 21), seeds=[3, 4, 5], mode="conservative"
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [m["seed"] for m in saved["per_seed"]] == [3, 4, 5] and saved["n_seeds"] == 3
    recalls = [m["recall_at_20"] for m in saved["per_seed"]]
    assert len(set(recalls)) > 1  # other seeds, other random scores
    mean = sum(recalls) / 3
    std = (sum((r - mean) ** 2 for r in recalls) / 2) ** 0.5
    assert saved["recall_at_20"] == pytest.approx(mean) and saved["std"]["recall_at_20"] == pytest.approx(std)
    assert out["tie_mode"] == "conservative" and all(f"mrr_at_{n}" in saved for n in range(1, 21))
    assert not (tmp_path / "model.safetensors").exists()  # baselines are refitted, not saved


def test_the_tie_mode_reaches_the_evaluator(tmp_path):
    """Item-KNN leaves most items unscored (tied): the optimistic mode ranks a target among them higher."""
    runs = {
        mode: final_run(TRAIN, TEST, {"n_sims": 5}, tmp_path / mode, model="itemknn", cutoffs=[20], mode=mode)
        for mode in ("standard", "conservative")
    }
    assert runs["standard"]["recall_at_20"] > runs["conservative"]["recall_at_20"]


def test_gru4rec_final_run_saves_the_first_seed_model(tmp_path):
    params = {"layers": [16], "n_epochs": 1, "batch_size": 8, "n_sample": 0, "loss": "cross-entropy"}
    out = final_run(TRAIN, TEST, params, tmp_path, cutoffs=[5, 20], device="cpu", seeds=[1, 2])
    assert out["n_seeds"] == 2 and (tmp_path / "model.safetensors").exists()
    assert out["per_seed"][0]["final_loss"] != out["per_seed"][1]["final_loss"]  # other seed, other model
    assert json.loads((tmp_path / "params.json").read_text())["layers"] == [16]


def test_every_tuned_baseline_space_is_valid_and_the_others_have_none():
    assert set(tuning.BASELINE_SPACES) <= set(BASELINES)
    for name, space in tuning.BASELINE_SPACES.items():
        tuning.check_fixed_and_space({}, space, BASELINES[name].validate_params)
    with pytest.raises(ParameterError, match="has no parameters to tune"):
        tuning.baseline_space("pop")
    space, fixed, check = tuning.study_setup("V-SkNN", {"baseline_space": None})
    assert space is tuning.BASELINE_SPACES["vsknn"] and fixed == {}


def test_a_baseline_study_uses_the_study_machinery(tmp_path):
    space = {"n_sims": {"type": "int", "low": 5, "high": 50, "step": 5}}
    score = tuning.ValidationScore(str(TRAIN), str(TEST), model="itemknn", mode="conservative", seed=1)
    summary = tuning.run_study(
        "ds/itemknn",
        str(tmp_path / "study.journal"),
        score,
        space,
        {},
        n_trials=3,
        seed=1,
        check=BASELINES["itemknn"].validate_params,
    )
    assert summary["n_complete"] == 3 and set(summary["params"]) == {"n_sims"}
    study = tuning.load_study("ds/itemknn", str(tmp_path / "study.journal"))
    assert summary["value"] == pytest.approx(max(t.value for t in study.trials))
    with pytest.raises(ParameterError, match="n_sims"):  # a bad bound is caught before any trial
        tuning.run_study(
            "ds/bad",
            str(tmp_path / "bad.journal"),
            score,
            {"n_sims": {"type": "int", "low": 0, "high": 5}},
            {},
            1,
            check=BASELINES["itemknn"].validate_params,
        )


@pytest.mark.parametrize("model", ["random", "itemknn"])
def test_the_ranks_file_gives_the_metrics_of_every_seed(tmp_path, model):
    # RANDOM: two seeds; Item-KNN: massive ties, counted over the whole catalogue (conservative)
    final_run(TRAIN, TEST, {}, tmp_path, model=model, cutoffs=range(1, 21), seeds=[3, 4], mode="conservative")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    ranks = pd.read_parquet(tmp_path / "ranks.parquet")
    assert list(ranks.columns) == ["SessionId", "Position", "ItemId", "Rank", "Seed"]
    for per_seed in saved["per_seed"]:
        r = ranks[ranks.Seed == per_seed["seed"]].Rank.to_numpy()
        assert len(r) == per_seed["n_predictions"]
        for n in (1, 5, 20):
            assert (r <= n).mean() == pytest.approx(per_seed[f"recall_at_{n}"], rel=1e-12)
            assert np.where(r <= n, 1 / r, 0).mean() == pytest.approx(per_seed[f"mrr_at_{n}"], rel=1e-12)
    assert sorted(ranks.Seed.unique()) == [3, 4]
