"""The compiled training step (gru4rec/compiled.py, compiled_step.c): each kernel against the eager
computation it replaces, whole trainings compiled against eager ones, the on-disk cache, and the
eager fallback where no compiler works."""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gru4rec import GRU4Rec, compiled
from gru4rec.losses import Loss
from gru4rec.model import GRU4RecNetwork, LayerCache
from gru4rec.optim import AdagradM
from gru4rec.rng import CounterRandom, guide_table

REPO = Path(__file__).resolve().parents[2]
KERNELS = compiled.native()
needs_kernels = pytest.mark.skipif(KERNELS is None, reason=f"no compiled step here: {compiled.why_not_native()}")


def _step_columns(b, n_sample, n_items, extra_inputs, seed):
    """A step's scored items (targets, then samples, with repeats) and the unique ids of the rows it
    gathers; `extra_inputs` unscored rows, as the shared mode gathers for input-only items."""
    g = torch.Generator().manual_seed(seed)
    Y = torch.randint(0, n_items, (b + n_sample,), generator=g)
    X = torch.randint(0, n_items, (extra_inputs,), generator=g)
    ids, where = torch.unique(torch.cat([X, Y]), return_inverse=True)
    return ids, where[extra_inputs:]


LOSSES = [("cross-entropy", "softmax"), ("bpr-max", "elu-0.5"), ("bpr-max", "elu-1"), ("bpr-max", "linear")]
SHAPES = [(32, 2048, 300, 0), (7, 50, 20, 5), (4, 0, 9, 3), (1, 6, 4, 0)]  # b, samples, items, input-only rows


@pytest.fixture
def threads():
    """The kernels' thread count for one test (fit sets torch's; 2 takes the parallel paths)."""
    yield KERNELS.set_threads
    KERNELS.set_threads(1)


@needs_kernels
@pytest.mark.parametrize("loss,act", LOSSES)
@pytest.mark.parametrize("b,n_sample,n_items,extra", SHAPES)
@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_compiled_loss_equals_the_eager_loss_and_its_column_sum(
    loss, act, b, n_sample, n_items, extra, with_offset, n_threads, threads
):  # noqa: E501
    threads(n_threads)
    ids, scored = _step_columns(b, n_sample, n_items, extra, seed=b + n_sample)
    g = torch.Generator().manual_seed(1)
    O_u = torch.randn((b, len(ids)), generator=g) * 4  # wide scores: softmax tails, elu's negative branch
    # log-Q offsets as a step has them: one per target column, one per sampled item for its columns
    off_t, off_u, offset = None, None, None
    if with_offset:
        off_t, off_u = torch.randn(b, generator=g), torch.randn(len(ids), generator=g)
        offset = torch.cat([off_t, off_u.index_select(0, scored[b:])])
    eager = Loss(loss, act, bpreg=1.9)
    value, dO = eager(O_u.index_select(1, scored), offset, 1 / b)
    expected = torch.zeros_like(O_u).index_add_(1, scored, dO)  # repeated columns add up; unscored rows stay 0

    spec = compiled.loss_spec(loss, act, 1.9)
    got_value, dO_u = KERNELS.loss(spec, O_u, scored, b, off_t, off_u, 1 / b)
    assert float(got_value) == pytest.approx(float(value), rel=2e-6)
    torch.testing.assert_close(dO_u, expected, rtol=1e-4, atol=2e-6)


@needs_kernels
@pytest.mark.parametrize("loss,act", LOSSES)
def test_a_nan_or_infinite_score_gives_a_nan_loss_as_eagerly(loss, act):
    # fit stops a diverged training by the loss; the compiled loss must not hide a NaN score
    ids, scored = _step_columns(6, 20, 15, 2, seed=0)
    spec = compiled.loss_spec(loss, act, 1.0)
    for bad in (float("nan"), float("inf")):
        for column in (2, 10):  # a target's score, a sample's
            O_u = torch.randn((6, len(ids)))
            O_u[2, scored[column]] = bad
            eager, _ = Loss(loss, act, bpreg=1.0)(O_u.index_select(1, scored), None, 1 / 6)
            value, _ = KERNELS.loss(spec, O_u, scored, 6, None, None, 1 / 6)
            assert torch.isfinite(value) == torch.isfinite(eager), (bad, column)
            if column == 2 or bad != bad:  # a NaN anywhere, an infinite target
                assert not torch.isfinite(value)


@needs_kernels
@pytest.mark.parametrize("loss,act", LOSSES)
@pytest.mark.parametrize("target,negatives", [(0.0, -100.0), (88.5, 0.0), (300.0, -5.0)])
def test_a_target_far_above_its_negatives_gives_the_eager_loss(loss, act, target, negatives):
    # exp(negatives - target) underflows: no 0 * inf may turn a finite loss into NaN
    ids, scored = _step_columns(3, 40, 30, 2, seed=1)
    O_u = torch.full((3, len(ids)), negatives)
    O_u[torch.arange(3), scored[:3]] = target
    eager_value, dO = Loss(loss, act, bpreg=1.0)(O_u.index_select(1, scored), None, 1 / 3)
    expected = torch.zeros_like(O_u).index_add_(1, scored, dO)
    value, dO_u = KERNELS.loss(compiled.loss_spec(loss, act, 1.0), O_u, scored, 3, None, None, 1 / 3)
    assert torch.isfinite(value) == torch.isfinite(eager_value)
    if torch.isfinite(eager_value):
        assert float(value) == pytest.approx(float(eager_value), rel=1e-5, abs=1e-6)
        torch.testing.assert_close(dO_u, expected, rtol=1e-4, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("loss,act", LOSSES)
def test_an_unscored_row_s_bad_score_is_not_read(loss, act):
    # shared mode gathers input-only items' rows too; their scores are no column of the score matrix
    ids, scored = _step_columns(6, 20, 15, 4, seed=0)
    unscored = sorted(set(range(len(ids))) - set(scored.tolist()))
    assert unscored
    O_u = torch.randn((6, len(ids)))
    O_u[:, unscored] = float("nan")
    value, dO_u = KERNELS.loss(compiled.loss_spec(loss, act, 1.0), O_u, scored, 6, None, None, 1 / 6)
    assert torch.isfinite(value) and torch.isfinite(dO_u).all()
    assert (dO_u[:, unscored] == 0).all()


@needs_kernels
@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_compiled_random_numbers_are_the_eager_ones(n_threads, threads):
    # a model trained with and without the compiled step sees the same dropout masks and samples
    g = torch.Generator().manual_seed(3)
    support = torch.randint(1, 50, (4101,), generator=g).float() ** 0.75
    support[[0, 7, 4100]] = 0.0  # items never drawn, at both ends
    cdf = torch.cumsum(support.double(), 0)
    cdf = (cdf / cdf[-1]).float()
    cdf[-1] = 1.0

    threads(n_threads)

    def draws(kernels):
        r = CounterRandom(torch.Generator().manual_seed(7))
        r.kernels = kernels
        return [
            r.dropout_mask((6, 9), 1.0 - 2.0**-26, "cpu"),  # rounds to keeping nothing: all 0
            r.categorical(cdf, 100_003, guide_table(cdf)),
            r.dropout_mask((33, 70), 0.3, "cpu"),
            r.dropout_mask((400, 100), 0.05, "cpu"),  # drawn in parallel with 2 threads
            r.categorical(torch.tensor([1.0]), 5, guide_table(torch.tensor([1.0]))),
        ]

    for compiled_draw, eager_draw in zip(draws(KERNELS), draws(None)):
        assert torch.equal(compiled_draw, eager_draw)


@needs_kernels
@pytest.mark.parametrize(
    "b,n,p_hidden",
    [(32, 100, 0.0), (7, 19, 0.3), (1, 3, 0.05), (80, 224, 0.5), (4, 5, 1.0 - 2.0**-26), (320, 224, 0.2)],
)
def test_the_compiled_gru_layer_is_the_eager_one(b, n, p_hidden, threads):
    threads(2)  # (320, 224): shared among threads
    g = torch.Generator().manual_seed(b + n)
    net = GRU4RecNetwork(50, [n, n], 0, True, torch.device("cpu"), g)
    a = torch.randn((b, 3 * n), generator=g) * 3  # wide pre-activations: saturated gates, tanh near 0 and 1
    a[0, :4] = torch.tensor([1e-5, -3e-4, 0.0, 0.1])
    h = torch.randn((b, n), generator=g)
    d_out = torch.randn((b, n), generator=g)

    def layer(kernels):
        net.kernels = kernels
        random = CounterRandom(torch.Generator().manual_seed(9))
        h_new, rz, rh, c, mask = net._gru_train(1, a, h, p_hidden, random)
        lc = LayerCache(x=None, h=h, rz=rz, rh=rh, c=c, mask=mask)
        dense = {}
        d_a = net._gru_backward(1, lc, d_out, dense)
        return [h_new, rz, rh, c, d_a] + [dense[k] for k in ("Wh1", "Wrz1", "Bh1")], mask

    compiled_values, compiled_mask = layer(KERNELS)
    eager_values, eager_mask = layer(None)
    if p_hidden == 0:
        assert compiled_mask is None and eager_mask is None
    else:
        assert torch.equal(compiled_mask, eager_mask)  # the same draw
    for k, (got, expected) in enumerate(zip(compiled_values, eager_values)):
        if k < 4:  # element-wise: tanh and sigmoid within float rounding
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        else:  # gradients, sums over the batch of products of those
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0 - 2.0**-26])
def test_the_compiled_input_embedding_is_the_eager_one(p):
    # the shared mode reads the embedding from WyBy's rows without their bias column: a strided view
    g = torch.Generator().manual_seed(4)
    net = GRU4RecNetwork(30, [6], 0, True, torch.device("cpu"), g)
    table = torch.randn((9, 7), generator=g)
    where = torch.tensor([3, 0, 3, 8, 5])  # a repeated row
    d = torch.randn((5, 6), generator=g)

    def embed(kernels):
        net.kernels = kernels
        x, mask = net.embed_rows(table[:, :-1], where, p, CounterRandom(torch.Generator().manual_seed(2)))
        grad = net.add_rows(torch.ones((9, 7))[:, :-1], where, d, mask)
        return x, mask, grad

    (x_c, mask_c, grad_c), (x_e, mask_e, grad_e) = embed(KERNELS), embed(None)
    assert torch.equal(x_c, x_e)
    assert (mask_c is None and mask_e is None) if p == 0 else torch.equal(mask_c, mask_e)
    torch.testing.assert_close(grad_c, grad_e)
    assert torch.equal(grad_c[[1, 2, 4, 6, 7]], torch.ones((5, 6)))  # rows no step used stay as they were


def test_compile_resolves_per_device_type(monkeypatch):
    from gru4rec import core
    from gru4rec.errors import ParameterError

    cpu, cuda, rr = torch.device("cpu"), torch.device("cuda"), dict(loss="bpr-max", batch_size=80, n_sample=2048)
    assert core.compilation(False, rr, 10**9, cpu) is None and core.compilation(False, rr, 10**9, cuda) is None
    expected = "native" if KERNELS is not None else None
    assert core.compilation("auto", rr, 1, cpu) == core.compilation(True, rr, 1, cpu) == expected
    assert core.compilation(True, rr, 1, cuda) == "loss"  # torch.compile of the loss on a GPU
    assert core.compilation("auto", rr, 10 * 22_000, cuda) is None  # no saving measured on a GPU yet
    monkeypatch.setitem(core.COMPILE_SAVING_PER_ELEMENT, "bpr-max", 2e-9)
    assert core.compilation("auto", rr, 3 * 800, cuda) is None  # 0.8 s saved < 60 s of compiling
    assert core.compilation("auto", rr, 10 * 22_000, cuda) == "loss"  # 75 s saved
    with torch.device("cpu"):
        torch.set_default_dtype(torch.float64)
        try:
            assert core.compilation(True, rr, 1, cpu) is None  # float32 kernels: float64 trains eagerly
        finally:
            torch.set_default_dtype(torch.float32)
    with pytest.raises(ParameterError, match="compile must be True, False or 'auto', got 'yes'"):
        core.compilation("yes", rr, 1, cpu)


def test_only_the_papers_losses_are_compiled():
    assert compiled.loss_spec("cross-entropy", "softmax", 0.0) == ("cross-entropy",)
    assert compiled.loss_spec("bpr-max", "elu-0.5", 1.5) == ("bpr-max", 0.5, 1.5)
    assert compiled.loss_spec("bpr-max", "linear", 0.0) == ("bpr-max", 0.0, 0.0)
    for loss, act in [("bpr-max", "tanh"), ("top1-max", "elu-1"), ("xe_logit", "softmax"), ("bpr", "linear")]:
        assert compiled.loss_spec(loss, act, 0.0) is None  # these run eagerly inside the compiled step


@needs_kernels
def test_unique_keeps_first_use_order_and_maps_every_use():
    ids = torch.tensor([5, 3, 5, 7, 3, 0, 7])
    uniq, where = KERNELS.unique(ids, n_items=8)
    assert uniq.tolist() == [5, 3, 7, 0] and torch.equal(uniq[where], ids)
    uniq, where = KERNELS.unique(torch.tensor([2, 2]), n_items=8)  # the scratch was reset: a fresh call
    assert uniq.tolist() == [2] and where.tolist() == [0, 0]


@needs_kernels
@pytest.mark.parametrize("momentum", [0.0, 0.4])
@pytest.mark.parametrize("idle", [False, True])
def test_the_in_place_row_update_equals_the_eager_gathered_update(momentum, idle):
    g = torch.Generator().manual_seed(0)
    net = GRU4RecNetwork(40, [6], 0, True, torch.device("cpu"), g)
    eager = AdagradM(net, 0.1, momentum)
    table0 = eager.tables["WyBy"]
    table0[:, 1:] = torch.rand(table0[:, 1:].shape, generator=g)  # some accumulated state
    tables = {"eager": table0.clone(), "native": table0.clone()}
    used = torch.tensor([3, 9, 3, 17, 39, 0])
    grad = torch.randn((5, 7), generator=g)  # per unique item, in id order
    for how, table in tables.items():
        net.tables["WyBy"], net.kernels = table, (KERNELS if how == "native" else None)
        touched = net.gather_rows("WyBy", used)
        order = torch.argsort(touched.ids)  # the same gradient per item, whichever order the ids come in
        g_rows = torch.empty_like(grad)
        g_rows[order] = grad
        if idle:  # items 3 and 39 were only inputs
            idle_rows = torch.empty(5, dtype=torch.bool)
            idle_rows[order] = torch.tensor([False, True, False, False, True])
            touched.scored = torch.nonzero(~idle_rows).flatten()
            assert torch.equal(touched.idle_last_col(), idle_rows)
        opt = AdagradM.__new__(AdagradM)
        opt.__dict__.update(eager.__dict__, kernels=net.kernels)
        opt.step({}, {"WyBy": (touched, g_rows)})
    torch.testing.assert_close(tables["native"], tables["eager"], rtol=1e-6, atol=1e-7)
    untouched = torch.ones(40, dtype=torch.bool).index_fill_(0, used, False)
    assert torch.equal(tables["native"][untouched], table0[untouched])


@needs_kernels
@pytest.mark.parametrize("momentum", [0.0, 0.4])
def test_the_dense_update_equals_the_eager_one(momentum):
    g = torch.Generator().manual_seed(2)
    p = {"eager": torch.randn(70_001, generator=g)}  # above the threshold at which it is shared among threads
    p["native"] = p["eager"].clone()
    grad = torch.randn(70_001, generator=g)
    acc = {k: torch.rand(70_001, generator=torch.Generator().manual_seed(3)) for k in p}
    vel = {k: torch.randn(70_001, generator=torch.Generator().manual_seed(4)) for k in p}
    opt = AdagradM.__new__(AdagradM)
    opt.lr, opt.momentum, opt.eps, opt.dense_names = 0.05, momentum, 1e-6, ["W"]
    opt.params, opt.acc, opt.vel = {"W": p["eager"]}, {"W": acc["eager"]}, {"W": vel["eager"]} if momentum else {}
    opt._dense_step({"W": grad})
    KERNELS.adagrad_dense(p["native"], grad, acc["native"], vel["native"] if momentum else None, 0.05, momentum, 1e-6)
    torch.testing.assert_close(p["native"], p["eager"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(acc["native"], acc["eager"])


TRAININGS = {  # every embedding mode, both papers' losses, momentum, log-Q, dropout, a legacy loss
    "shared-xe-logq": dict(loss="cross-entropy", constrained_embedding=True, logq=1.0, dropout_p_embed=0.1),
    "shared-bprmax-momentum": dict(
        loss="bpr-max", final_act="elu-0.5", bpreg=1.9, constrained_embedding=True, momentum=0.4, dropout_p_embed=0.5
    ),
    "separate-bprmax": dict(loss="bpr-max", final_act="linear", embedding=8, momentum=0.2, dropout_p_hidden=0.1),
    "onehot-xe-2layers": dict(loss="cross-entropy", layers=[12, 8], n_sample=0),
    "shared-top1max-eager-loss": dict(loss="top1-max", final_act="elu-1", constrained_embedding=True, momentum=0.3),
}


@needs_kernels
@pytest.mark.parametrize("name", TRAININGS)
def test_a_model_trained_compiled_equals_the_eager_one(markov_data, name):
    train = markov_data[0]
    train = train[train.SessionId < train.SessionId.min() + 400]
    params = dict(dict(layers=[16], batch_size=16, n_sample=24, n_epochs=2, learning_rate=0.05), **TRAININGS[name])
    models, used = {}, {}
    for how in (False, True):
        m = models[how] = GRU4Rec(params, device="cpu", seed=3)
        m.fit(train, verbose=False, compile=how, callback=lambda _, m=m, how=how: used.setdefault(how, m.net.kernels))
    eager, native = models[False], models[True]
    assert used == {True: KERNELS, False: None}  # each trained the way it was asked
    assert native.net.kernels is None  # and the trained model holds no handle on the library: it pickles
    pickle.loads(pickle.dumps(native))
    assert eager.history[0]["n_steps"] > 100
    for e, c in zip(eager.history, native.history):
        assert c["loss"] == pytest.approx(e["loss"], rel=1e-4)
    for key, tensor in eager.net.state().items():
        torch.testing.assert_close(native.net.state()[key], tensor, rtol=1e-3, atol=1e-4, msg=key)


def _fit_in_subprocess(tmp_path, env, code_after=""):
    script = textwrap.dedent(
        f"""
        import warnings
        warnings.simplefilter("default")
        from gru4rec import GRU4Rec
        from tests.conftest import markov_sessions
        df = markov_sessions()
        df = df[df.SessionId < df.SessionId.min() + 100]
        for compile in ("auto", True):
            m = GRU4Rec(layers=[8], batch_size=8, n_sample=4, n_epochs=1, device="cpu")
            used = []
            m.fit(df, verbose=False, compile=compile, callback=lambda info: used.append(m.net.kernels))
            print("kernels:", used[0] is not None)
        {code_after}
        """
    )
    run_env = {**os.environ, "GRU4REC_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, env=run_env, capture_output=True, text=True)


def test_without_a_compiler_training_runs_eagerly_and_says_so_once(tmp_path):
    r = _fit_in_subprocess(tmp_path, {"CC": str(tmp_path / "no-such-compiler")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["kernels:", "False", "kernels:", "False"]
    lines = [ln for ln in r.stderr.splitlines() if "compiled training step is unavailable" in ln]
    assert len(lines) == 1, r.stderr  # once per process, not once per fit
    assert "no C compiler found" in lines[0] and "training eagerly" in lines[0]


def test_a_compiler_that_fails_is_named_and_training_runs_eagerly(tmp_path):
    fake = tmp_path / "cc"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "cc 1.0" && exit 0\necho "cc: error: no" >&2; exit 1\n')
    fake.chmod(0o755)
    r = _fit_in_subprocess(tmp_path, {"CC": str(fake)})
    assert r.returncode == 0, r.stderr
    assert "kernels: False" in r.stdout
    assert "building compiled_step.c with" in r.stderr and "cc: error: no" in r.stderr


@needs_kernels
def test_the_build_is_cached_on_disk_per_source_compiler_and_cpu(tmp_path, monkeypatch):
    cc = compiled._compiler()
    path = compiled.build(cc, tmp_path)
    assert path.parent == tmp_path and path.suffix == ".so"
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(compiled.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or real_run(cmd, **kw))
    assert compiled.build(cc, tmp_path) == path  # cached: only the compiler's version is asked for
    assert calls == [[*cc, "--version"]]
    monkeypatch.setattr(compiled, "_cpu_identity", lambda: "another CPU")
    other = compiled.build(cc, tmp_path)
    assert other != path and other.exists()  # another CPU gets its own build (-march=native)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
