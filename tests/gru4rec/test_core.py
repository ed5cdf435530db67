"""Training behaviour: learning, determinism, divergence, save/load, embedding modes."""

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec import GRU4Rec, TrainingDivergedError, evaluate
from gru4rec.errors import GRU4RecError


def most_popular_recall(train, test, n=20):
    top = set(train.ItemId.value_counts().index[:n])
    test = test.sort_values(["SessionId", "Time"])
    targets = test.groupby("SessionId").ItemId.apply(lambda s: list(s)[1:]).sum()
    return np.mean([t in top for t in targets])


def test_learns_sequential_structure_far_better_than_popularity(markov_data):
    train, test = markov_data
    model = GRU4Rec(
        layers=[64],
        n_epochs=3,
        batch_size=32,
        n_sample=128,
        loss="cross-entropy",
        logq=1.0,
        learning_rate=0.1,
        device="cpu",
    )
    model.fit(train, verbose=False)
    res = evaluate(model, test, cutoffs=(20,))
    pop = most_popular_recall(train, test)
    assert pop < 0.25
    assert res.recall[20] > 0.7 and res.recall[20] > 3 * pop, (res.recall[20], pop)


@pytest.mark.parametrize(
    "params",
    [
        dict(constrained_embedding=False, embedding=0),
        dict(constrained_embedding=False, embedding="layersize", layers=[24, 16]),
        dict(
            constrained_embedding=True,
            loss="bpr-max",
            final_act="elu-0.5",
            momentum=0.3,
            dropout_p_embed=0.2,
            dropout_p_hidden=0.2,
            n_sample=0,
        ),
    ],
)
def test_embedding_modes_train_and_beat_popularity(markov_data, params):
    train, test = markov_data
    p = dict(layers=[32], n_epochs=2, batch_size=32, n_sample=64, learning_rate=0.1)
    p.update(params)
    model = GRU4Rec(p, device="cpu")
    hist = model.fit(train, verbose=False)
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]
    assert evaluate(model, test).recall[20] > 2 * most_popular_recall(train, test)


def small_fit(train, seed, **kw):
    model = GRU4Rec(
        layers=[16],
        n_epochs=1,
        batch_size=16,
        n_sample=32,
        dropout_p_hidden=0.3,
        momentum=0.2,
        seed=seed,
        device="cpu",
        **kw,
    )
    model.fit(train.iloc[:3000], verbose=False)
    return model


def test_same_seed_same_model_different_seed_different_model(markov_data):
    train, _ = markov_data
    a, b, c = small_fit(train, 7), small_fit(train, 7), small_fit(train, 8)
    for name in a.net.params:
        assert torch.equal(a.net.params[name], b.net.params[name]), name
    assert not torch.equal(a.net.params["WyBy"], c.net.params["WyBy"])
    assert a.history[0]["loss"] == b.history[0]["loss"]


def test_random_session_order_is_seeded(markov_data):
    train, _ = markov_data
    a = small_fit(train, 1, train_random_order=True)
    b = small_fit(train, 1, train_random_order=True)
    t = small_fit(train, 1)
    assert torch.equal(a.net.params["WyBy"], b.net.params["WyBy"])
    assert not torch.equal(a.net.params["WyBy"], t.net.params["WyBy"])


def test_nan_loss_stops_training_and_nothing_is_usable(markov_data, monkeypatch, tmp_path):
    train, test = markov_data
    from gru4rec import compiled, losses

    def exploding(O, offset=None, scale=1.0):
        return torch.tensor(float("nan")), torch.zeros_like(O)

    monkeypatch.setattr(losses.Loss, "__call__", lambda self, O, offset=None, scale=1.0: exploding(O))
    monkeypatch.setattr(compiled.NativeKernels, "loss", lambda self, spec, O_u, *args: exploding(O_u))
    model = GRU4Rec(layers=[8], n_epochs=1, batch_size=8, n_sample=0, device="cpu")
    with pytest.raises(TrainingDivergedError, match="nan"):
        model.fit(train.iloc[:2000], verbose=False)
    assert not model.trained
    with pytest.raises(GRU4RecError):
        model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(GRU4RecError):
        evaluate(model, test)


def test_save_load_round_trip_gives_identical_scores(markov_data, tmp_path):
    train, test = markov_data
    model = small_fit(train, 3)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = GRU4Rec.load(path, device="cpu")
    assert loaded.params == model.params and list(loaded.item_ids) == list(model.item_ids)
    counts = train.iloc[:3000].ItemId.value_counts()
    np.testing.assert_array_equal(model.item_support, counts[model.item_ids].to_numpy())
    np.testing.assert_array_equal(loaded.item_support, model.item_support)
    a = evaluate(model, test, cutoffs=(1, 20))
    b = evaluate(loaded, test, cutoffs=(1, 20))
    assert a.recall == b.recall and a.mrr == b.mrr
    X = torch.tensor([0, 5, 9])
    with torch.no_grad():
        sa = model.net.score_all(model.net.forward_hidden(X, model.net.init_hidden(3)))
        sb = loaded.net.score_all(loaded.net.forward_hidden(X, loaded.net.init_hidden(3)))
    assert torch.equal(sa, sb)


def test_string_item_ids_and_unsorted_input(markov_data):
    train, test = markov_data
    tr = train.assign(ItemId="item-" + train.ItemId.astype(str)).sample(frac=1.0, random_state=0)
    te = test.assign(ItemId="item-" + test.ItemId.astype(str))
    model = GRU4Rec(layers=[16], n_epochs=1, batch_size=16, n_sample=32, device="cpu", seed=3)
    model.fit(tr, verbose=False)
    ref = GRU4Rec(layers=[16], n_epochs=1, batch_size=16, n_sample=32, device="cpu", seed=3)
    ref.fit(train, verbose=False)
    assert model.item_ids[0].startswith("item-")
    # same sessions, only shuffled rows and renamed items: the schedule and the result are the same
    assert model.history[0]["n_events"] == ref.history[0]["n_events"]
    assert evaluate(model, te).n_predictions == evaluate(ref, test).n_predictions


def test_prints_epoch_lines_in_reference_format(markov_data, capsys):
    train, _ = markov_data
    GRU4Rec(layers=[8], n_epochs=2, batch_size=16, n_sample=16, device="cpu").fit(train.iloc[:2000])
    out = capsys.readouterr().out
    import re

    assert (
        len(re.findall(r"^Epoch\d --> loss: \d+\.\d{6} \(\d+\.\d\ds\) \[\d+\.\d\d mb/s \| \d+ e/s\]$", out, re.M)) == 2
    )


def test_no_trainable_session_is_a_data_error():
    from gru4rec.errors import DataError

    df = pd.DataFrame({"SessionId": [1, 2, 3], "ItemId": [1, 2, 3], "Time": [1, 2, 3]})
    with pytest.raises(DataError, match="at least 2 events"):
        GRU4Rec(layers=[4], device="cpu").fit(df, verbose=False)


# the first session (in time order) has one event; three sessions for four slots: the first step
# already has fewer rows than the batch (it used to crash with an IndexError)
TINY = pd.DataFrame({"SessionId": [1, 2, 2, 2, 3, 3], "ItemId": [5, 6, 7, 8, 6, 9], "Time": [0, 1, 2, 3, 4, 5]})


@pytest.mark.parametrize("n_sample", [0, 3])
def test_fit_on_fewer_sessions_than_the_batch_with_a_one_event_session_first(n_sample):
    model = GRU4Rec(layers=[4], n_epochs=2, batch_size=4, n_sample=n_sample, device="cpu")
    hist = model.fit(TINY, verbose=False)
    # n_sample=0 needs 2 slots: only step 0 (e6->e7, e6->e9); with samples, step 1 (e7->e8) too
    assert [h["n_events"] for h in hist] == ([2, 2] if n_sample == 0 else [3, 3])
    assert model.trained and np.isfinite(hist[-1]["loss"])


def test_logq_applies_to_ranking_losses_too(markov_data):
    # the Theano original subtracts logq * log(support) from the scores before the final activation
    # for every loss; it used to be silently ignored for the ranking losses
    train, _ = markov_data
    a = small_fit(train, 5, loss="bpr-max", final_act="elu-0.5")
    b = small_fit(train, 5, loss="bpr-max", final_act="elu-0.5", logq=1.0)
    assert not torch.equal(a.net.params["WyBy"], b.net.params["WyBy"])


def test_model_file_with_a_wrong_tensor_shape_is_a_data_error(markov_data, tmp_path):
    from gru4rec.errors import DataError
    from gru4rec.serialization import load_model_file, save_model_file

    model = small_fit(markov_data[0], 3)
    model.save(tmp_path / "m.safetensors")
    header, tensors, item_ids = load_model_file(tmp_path / "m.safetensors")
    tensors["Wh0"] = tensors["Wh0"][:, :-1]
    save_model_file(tmp_path / "bad.safetensors", header, tensors, item_ids)
    with pytest.raises(DataError, match=r"bad.safetensors: model file is inconsistent .*Wh0"):
        GRU4Rec.load(tmp_path / "bad.safetensors", device="cpu")
