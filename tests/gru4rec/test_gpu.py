"""The library on a GPU: training (the loss compiled and eager), evaluation, recommend, streaming
and save/load on `cuda`, each checked against the same model on the CPU.

Marked `gpu` and skipped without CUDA (so in CI); benchmarks/gpu_check.sh runs them on a GPU
machine. GRU4REC_GPU_TEST_DEVICE=cpu runs the same checks with the CPU as the "device" (CPU against
CPU: that only shows the checks themselves work, e.g. after editing this file).
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
import torch

from gru4rec import GRU4Rec, evaluate, recommend
from gru4rec.streaming import SessionRecommender

DEVICE = os.environ.get("GRU4REC_GPU_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.startswith("cuda") and not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); benchmarks/gpu_check.sh runs these on one",
    ),
]

PARAMS = {
    "layers": [32],
    "batch_size": 32,
    "n_sample": 64,
    "n_epochs": 2,
    "dropout_p_embed": 0.1,
    "dropout_p_hidden": 0.1,
    "learning_rate": 0.05,
    "momentum": 0.1,
}
LOSSES = {
    "cross-entropy": {"loss": "cross-entropy", "logq": 1.0},
    "bpr-max": {"loss": "bpr-max", "final_act": "elu-0.5", "bpreg": 1.0},
}
# fit's compile switch: True fuses the loss's element-wise passes with torch.compile, False is eager
VARIANTS = [(loss, compiled) for loss in LOSSES for compiled in (False, True)]
VARIANT_IDS = [f"{loss}-{'compiled' if compiled else 'eager'}" for loss, compiled in VARIANTS]
TOL = 1e-4  # scores: float32 on two devices (different kernels, summation orders)
N_SESSIONS = 40  # test sessions replayed by recommend and streaming


@pytest.fixture(scope="module")
def trained(markov_data, tmp_path_factory):
    """trained(loss, compiled): a model trained on DEVICE (once per variant), with its stderr during
    fit, its file and the same weights loaded on the CPU."""
    cache = {}

    def train(loss, compiled):
        if (loss, compiled) not in cache:
            model = GRU4Rec(dict(PARAMS, **LOSSES[loss]), device=DEVICE, seed=7)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                model.fit(markov_data[0], verbose=False, compile=compiled)
            path = tmp_path_factory.mktemp("models") / f"{loss}-{compiled}.safetensors"
            model.save(path)
            cache[loss, compiled] = model, err.getvalue(), path, GRU4Rec.load(path, device="cpu")
        return cache[loss, compiled]

    return train


def _sessions(test, n=N_SESSIONS):
    return [list(g.ItemId) for _, g in list(test.groupby("SessionId", sort=True))[:n]]


def _assert_same_ranking(a_items, a_scores, b_items, b_scores):
    """Two full rankings (every item, best first): the same score per item, and the same order
    except among items whose scores are closer than the devices' rounding."""
    a = dict(zip(np.asarray(a_items).tolist(), np.asarray(a_scores, dtype=np.float64)))
    b = dict(zip(np.asarray(b_items).tolist(), np.asarray(b_scores, dtype=np.float64)))
    assert a.keys() == b.keys()
    keys = list(a)
    np.testing.assert_allclose([a[k] for k in keys], [b[k] for k in keys], rtol=TOL, atol=TOL)
    for ia, ib in zip(np.asarray(a_items).tolist(), np.asarray(b_items).tolist()):
        if ia != ib:
            assert abs(a[ia] - a[ib]) <= 2 * TOL * (1 + abs(a[ia])), (ia, ib, a[ia], a[ib])


@pytest.mark.parametrize("loss,compiled", VARIANTS, ids=VARIANT_IDS)
def test_training_runs_on_the_device(trained, loss, compiled):
    model, err, _, _ = trained(loss, compiled)
    assert model.device.type == torch.device(DEVICE).type
    assert all(t.device.type == model.device.type for t in model.net.state().values())
    losses = [h["loss"] for h in model.history]
    assert len(losses) == PARAMS["n_epochs"] and np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    assert "torch.compile failed" not in err  # compiled means compiled: no silent fallback to eager


@pytest.mark.parametrize("loss", LOSSES)
def test_compiled_training_follows_eager_training(trained, loss):
    """The same seed draws the same samples and dropout masks: only the loss's rounding differs."""
    eager, compiled = trained(loss, False)[0], trained(loss, True)[0]
    for e, c in zip(eager.history, compiled.history):
        assert c["loss"] == pytest.approx(e["loss"], rel=1e-3)


@pytest.mark.parametrize("loss,compiled", VARIANTS, ids=VARIANT_IDS)
def test_evaluation_on_the_device_equals_the_cpu(trained, markov_data, loss, compiled):
    model, _, _, cpu = trained(loss, compiled)
    on_device = evaluate(model, markov_data[1], cutoffs=(1, 5, 20))
    on_cpu = evaluate(cpu, markov_data[1], cutoffs=(1, 5, 20))
    n = on_cpu.n_predictions
    assert on_device.n_predictions == n > 1000 and on_device.n_dropped == on_cpu.n_dropped
    # a target tied with another item within the rounding may change rank: allow two such events
    for name in ("recall", "mrr", "ndcg"):
        for c in on_cpu.cutoffs:
            assert getattr(on_device, name)[c] == pytest.approx(getattr(on_cpu, name)[c], abs=2 / n), (name, c)
    for c in on_cpu.cutoffs:
        assert on_device.coverage[c] == pytest.approx(on_cpu.coverage[c], abs=2 / model.n_items)
        assert on_device.popularity[c] == pytest.approx(on_cpu.popularity[c], rel=1e-3)
    assert on_cpu.recall[20] > 0.5  # a model that learnt the transitions, not noise


@pytest.mark.parametrize("loss,compiled", VARIANTS, ids=VARIANT_IDS)
def test_recommend_on_the_device_equals_the_cpu(trained, markov_data, loss, compiled):
    model, _, _, cpu = trained(loss, compiled)
    sessions = _sessions(markov_data[1])
    on_device, unknown_device = recommend(model, sessions, k=model.n_items)
    on_cpu, unknown_cpu = recommend(cpu, sessions, k=cpu.n_items)
    assert unknown_device == unknown_cpu
    for d, c in zip(on_device, on_cpu):
        assert len(d) == len(c) == model.n_items
        _assert_same_ranking([i for i, _ in d], [s for _, s in d], [i for i, _ in c], [s for _, s in c])


@pytest.mark.parametrize("loss,compiled", VARIANTS, ids=VARIANT_IDS)
def test_streaming_on_the_device_equals_the_cpu(trained, markov_data, loss, compiled):
    model, _, _, cpu = trained(loss, compiled)
    recs = [SessionRecommender(m, k=m.n_items, return_embedding=True) for m in (model, cpu)]
    sessions = _sessions(markov_data[1])
    # the sessions' events interleaved, one round of events per update_many (batched on the device)
    for step in range(max(map(len, sessions))):
        sids = [s for s, items in enumerate(sessions) if step < len(items)]
        items = [sessions[s][step] for s in sids]
        on_device, on_cpu = (r.update_many(sids, items) for r in recs)
        for d, c in zip(on_device, on_cpu):
            assert d.n_events == c.n_events and d.unknown_item == c.unknown_item
            _assert_same_ranking(d.items, d.scores, c.items, c.scores)
            np.testing.assert_allclose(d.embedding, c.embedding, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("loss,compiled", VARIANTS, ids=VARIANT_IDS)
def test_saved_on_the_device_loads_on_the_cpu_and_back(trained, markov_data, tmp_path, loss, compiled):
    model, _, _, cpu = trained(loss, compiled)
    weights = {k: v.cpu() for k, v in model.net.state().items()}
    assert all(torch.equal(weights[k], v) for k, v in cpu.net.state().items())  # the file is exact
    assert cpu.device.type == "cpu" and (cpu.item_ids == model.item_ids).all()
    cpu.save(tmp_path / "from-cpu.safetensors")
    back = GRU4Rec.load(tmp_path / "from-cpu.safetensors", device=DEVICE)
    assert back.device == model.device
    assert all(torch.equal(v, back.net.state()[k]) for k, v in model.net.state().items())
    sessions = _sessions(markov_data[1], 10)
    for d, b in zip(recommend(model, sessions, k=10)[0], recommend(back, sessions, k=10)[0]):
        assert d == b  # the same weights on the same device: the same scores, bit for bit
