"""Baselines: each one's scores against a brute-force pure-Python computation of its definition,
the scorer protocol (reset / keep / step), parameter errors, the CLI, and end to end runs."""

import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec.baselines import BASELINES, UNSCORED, make_baseline, parse_baseline_params
from gru4rec.batching import build_schedule
from gru4rec.errors import GRU4RecError, ParameterError
from gru4rec.evaluation import ranks_of_targets
from tests.conftest import markov_sessions
from tests.gru4rec.test_cli import run

DATA = Path(__file__).resolve().parents[1] / "data" / "baselines"

# Hand-made training sessions (string item ids); times 100 * session + position, so the recency of a
# session is its id, except sessions 13 and 14 whose last events share one time.
TRAIN = {
    1: "abc",
    2: "ab",
    3: "bcd",
    4: "cde",
    5: "acea",
    6: "def",
    7: "efg",
    8: "abcd",
    9: "fgh",
    10: "gha",
    11: "bbc",
    12: "hab",
    13: "cf",
    14: "df",
}
TEST = ["abcd", "eag", "hhbf", "c", "fdabe", "bb"]


def hand_train():
    rows = [(s, item, 100 * s + k) for s, items in TRAIN.items() for k, item in enumerate(items)]
    df = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    df.loc[df.SessionId == 14, "Time"] -= 100  # 14 ends at the same time as 13
    return df


def fitted(name, train=None, seed=1, **params):
    return make_baseline(name, seed=seed, **params).fit(hand_train() if train is None else train, verbose=False)


def prefix_scores(model, session):
    """Scores after each event of one session, from a scorer of width 1: the simplest driver."""
    scorer = model.session_scorer(1, "cpu")
    scorer.reset(torch.tensor([True]))
    cols = model.item_index(np.array(list(session), dtype=object))
    return [scorer.step(torch.tensor([c]))[0].numpy() for c in cols]


def as_vector(model, scores: dict):
    """A brute-force {item id: score} as a model-column vector, UNSCORED where missing."""
    out = np.full(model.n_items, UNSCORED)
    for item, value in scores.items():
        out[model.item_index([item])[0]] = value
    return out


def assert_same_scores(model, got, want: dict, rtol=1e-6):
    want = as_vector(model, want)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=rtol)
    if np.isfinite(want).any():  # the top item, where it is unique
        best = np.flatnonzero(want == want.max())
        if len(best) == 1:
            assert int(np.argmax(got)) == best[0]


def assert_same_order(got, want):
    """Same ranking, ties included: every pair of items compares the same way."""

    def compare(v):
        v = np.asarray(v, dtype=np.float64)
        return (v[:, None] > v[None, :]).astype(int) - (v[:, None] < v[None, :])

    np.testing.assert_array_equal(compare(got), compare(want))


# ------------------------------------------------------------------------------------------------
# Brute force: the reference definitions, written out with dicts and sets
# ------------------------------------------------------------------------------------------------
def support(train):
    return Counter(train.ItemId)


def sessions_of(train):
    train = train.sort_values(["SessionId", "Time"], kind="stable")
    return {s: list(g.ItemId) for s, g in train.groupby("SessionId", sort=True)}


def pop_brute(train, top_n):
    supp = support(train)
    ranked = sorted(supp, key=lambda i: (-supp[i], i))
    top = ranked if top_n == 0 else ranked[:top_n]
    return {i: supp[i] / (supp[i] + 1) for i in top}  # the reference's formula


def spop_brute(train, top_n, prefix):
    scores = defaultdict(float, pop_brute(train, top_n))
    for item in prefix:
        scores[item] += 1
    return dict(scores)


def itemknn_brute(train, n_sims, lmbd, alpha):
    supp = support(train)
    co = defaultdict(float)
    for items in sessions_of(train).values():
        for a in items:  # per event of a, each distinct item of its session once, as the reference counts
            for b in set(items):
                co[a, b] += 1
    sims = {}
    for i in supp:
        row = {
            j: co[i, j] / ((supp[i] + lmbd) ** alpha * (supp[j] + lmbd) ** (1 - alpha))
            for j in supp
            if j != i and co[i, j] > 0
        }
        sims[i] = dict(sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:n_sims])
    return sims


POS_WEIGHT = {
    "div": lambda p, L: p / L,
    "quadratic": lambda p, L: (p / L) ** 2,
    "log": lambda p, L: 1 / math.log10(L - p + 1.7),
    "same": lambda p, L: 1.0,
}
DECAY = {
    "div": lambda d: 1 / d,
    "quadratic": lambda d: 1 / (d * d),
    "log": lambda d: 1 / math.log10(d + 1.7),
    "same": lambda d: 1.0,
}


def knn_brute(
    train,
    prefix,
    k,
    sample_size,
    variant="sknn",
    weighting="div",
    weighting_score="div",
    similarity="vec",
    idf_weighting=0.0,
):
    """session-rec's ContextKNN (cosine) / VMContextKNN predict_next for one session prefix."""
    sessions = sessions_of(train)
    last = {s: train[train.SessionId == s].Time.max() for s in sessions}
    recency = {s: r for r, s in enumerate(sorted(sessions, key=lambda s: (last[s], s)))}
    item_sets = {s: set(items) for s, items in sessions.items()}
    current = set(prefix)
    candidates = {s for s, b in item_sets.items() if b & current}
    if sample_size and len(candidates) > sample_size:
        candidates = set(sorted(candidates, key=lambda s: recency[s], reverse=True)[:sample_size])
    pos = {item: POS_WEIGHT[weighting](p, len(prefix)) for p, item in enumerate(prefix, 1)}
    sim = {}
    for s in candidates:
        shared = sorted(item_sets[s] & current)
        if variant == "sknn":
            sim[s] = len(shared) / math.sqrt(len(current) * len(item_sets[s]))
        elif similarity == "vec":
            sim[s] = sum(pos[i] for i in shared) / len(current)
        else:
            sim[s] = sum(pos[i] for i in shared) / (
                math.sqrt(sum(pos[i] ** 2 for i in current)) * math.sqrt(len(item_sets[s]))
            )
    neighbours = sorted(candidates, key=lambda s: (-sim[s], -recency[s]))[:k]
    n_sessions, supp = len(sessions), support(train)
    scores = defaultdict(float)
    for s in neighbours:
        decay = 1.0
        if variant == "vsknn":
            d = next(d for d, item in enumerate(reversed(prefix), 1) if item in item_sets[s])
            decay = DECAY[weighting_score](d)
        for item in item_sets[s]:
            boost = 1 + idf_weighting * math.log(n_sessions / supp[item]) if variant == "vsknn" else 1
            scores[item] += sim[s] * boost * decay
    return dict(scores)


# ------------------------------------------------------------------------------------------------
# Each baseline against its brute force
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("top_n", [100, 4, 0])  # 4: d and f tie at the cut
def test_pop_ranks_items_as_the_reference_formula(top_n):
    model = fitted("pop", top_n=top_n)
    want = as_vector(model, pop_brute(hand_train(), top_n))
    for session in TEST:
        for got in prefix_scores(model, session):
            assert_same_order(got, want)
    assert np.isfinite(want).sum() == (min(top_n, model.n_items) if top_n else model.n_items)


@pytest.mark.parametrize("top_n", [100, 4])
def test_spop_ranks_session_items_first_then_popularity(top_n):
    model = fitted("s-pop", top_n=top_n)
    for session in TEST:
        for k, got in enumerate(prefix_scores(model, session)):
            assert_same_order(got, as_vector(model, spop_brute(hand_train(), top_n, session[: k + 1])))
    got = prefix_scores(model, "hhbf")[1]  # h twice beats b and every popular item
    assert model.item_ids[np.argmax(got)] == "h"


def test_spop_session_count_outweighs_every_popularity_level():
    train = pd.DataFrame({"SessionId": [1] * 6 + [2] * 2, "ItemId": [1, 1, 1, 1, 2, 3, 3, 4], "Time": range(8)})
    model = make_baseline("spop").fit(train, verbose=False)
    got = prefix_scores(model, [4, 2, 4])[-1]
    # item 4 twice, then 2 once (popularity 1 event), then 1 (4 events), 3 (3 events)
    assert list(model.item_ids[np.argsort(-got, kind="stable")]) == [4, 2, 1, 3]


@pytest.mark.parametrize("params", [dict(), dict(n_sims=2, lmbd=0.0, alpha=1.0), dict(n_sims=3, lmbd=5.0, alpha=0.2)])
def test_itemknn_against_brute_force(params):
    model = fitted("itemknn", **params)
    p = model.params
    sims = itemknn_brute(hand_train(), p["n_sims"], p["lmbd"], p["alpha"])
    for session in TEST:
        for item, got in zip(session, prefix_scores(model, session)):
            assert_same_scores(model, got, sims[item])  # only the current item counts


def test_itemknn_on_random_sessions_against_brute_force():
    train = markov_sessions(n_sessions=80, n_items=15, seed=4, max_len=6)
    model = fitted("itemknn", train=train, n_sims=4, lmbd=2.0)
    sims = itemknn_brute(train, 4, 2.0, 0.5)
    for item in train.ItemId.unique()[:10]:
        assert_same_scores(model, prefix_scores(model, [item])[0], sims[item])


KNN_CASES = [
    ("sknn", dict()),
    ("sknn", dict(k=3, sample_size=4)),
    ("sknn", dict(k=2, sample_size=0)),
    ("vsknn", dict()),
    ("vsknn", dict(k=3, sample_size=4)),
    ("vsknn", dict(k=4, sample_size=6, weighting="quadratic", weighting_score="quadratic", idf_weighting=2.0)),
    ("vsknn", dict(k=3, weighting="log", weighting_score="log", similarity="cosine", idf_weighting=0.5)),
    ("vsknn", dict(k=5, sample_size=3, weighting="same", weighting_score="same", similarity="cosine")),
]


@pytest.mark.parametrize("name,params", KNN_CASES)
def test_session_knn_against_brute_force(name, params):
    model = fitted(name, **params)
    variant = dict(model.params, variant=name)
    for session in TEST:
        for k, got in enumerate(prefix_scores(model, session)):
            assert_same_scores(model, got, knn_brute(hand_train(), session[: k + 1], **variant))


def test_session_knn_sampling_keeps_the_most_recent_candidates():
    # 'b' is in sessions 1, 2, 3, 8, 11, 12: with sample_size 2 only 12 and 11 are candidates
    model = fitted("sknn", sample_size=2, k=100)
    got = prefix_scores(model, "b")[0]
    scored = set(model.item_ids[np.isfinite(got)])
    assert scored == set(TRAIN[12]) | set(TRAIN[11])
    # equal last times: session 14 (later in session order) counts as more recent than 13
    got = prefix_scores(fitted("sknn", sample_size=1), "f")[0]
    assert set(model.item_ids[np.isfinite(got)]) == set(TRAIN[14])


@pytest.mark.parametrize(
    "name,params", [("sknn", dict(k=4, sample_size=10)), ("vsknn", dict(k=5, sample_size=8, idf_weighting=1.0))]
)
def test_session_knn_on_random_sessions_against_brute_force(name, params):
    data = markov_sessions(n_sessions=70, n_items=12, seed=5, max_len=7)
    train, test = data[data.SessionId < 60], data[data.SessionId >= 60]
    model = fitted(name, train=train, **params)
    variant = dict(model.params, variant=name)
    for _, g in test.groupby("SessionId"):
        session = list(g.ItemId)
        for k, got in enumerate(prefix_scores(model, session)):
            assert_same_scores(model, got, knn_brute(train, session[: k + 1], **variant))


def test_bprmf_session_vector_is_the_mean_of_its_item_factors():
    model = fitted("bprmf", n_factors=8, n_iterations=2)
    factors = model.item_factors.numpy().astype(np.float64)
    for session in TEST:
        cols = model.item_index(np.array(list(session), dtype=object))
        for k, got in enumerate(prefix_scores(model, session)):
            want = factors @ factors[cols[: k + 1]].mean(axis=0)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_bprmf_update_is_the_reference_sgd_step():
    model = make_baseline("bprmf", n_factors=4, learning_rate=0.1, lambda_session=0.01, lambda_item=0.02)
    rng = np.random.default_rng(0)
    U0, I0 = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    U, I = torch.tensor(U0, dtype=torch.float64), torch.tensor(I0, dtype=torch.float64)
    # two events with no shared row: one summed batch equals two sequential reference steps
    model._update(U, I, torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 0]))
    for s, p, n in [(0, 1, 4), (2, 3, 0)]:
        u, i1, i2 = U0[s].copy(), I0[p].copy(), I0[n].copy()
        c = 1 - 1 / (1 + math.exp(-(i1 @ u - i2 @ u)))
        U0[s] += 0.1 * (c * (i1 - i2) - 0.01 * u)
        I0[p] += 0.1 * (c * u - 0.02 * i1)
        I0[n] += 0.1 * (-c * u - 0.02 * i2)
    np.testing.assert_allclose(U.numpy(), U0, rtol=1e-12)
    np.testing.assert_allclose(I.numpy(), I0, rtol=1e-12)


def test_bprmf_learns_and_is_seeded():
    train = markov_sessions(n_sessions=300, n_items=30, seed=2)
    a = make_baseline("bprmf", seed=7, n_factors=16, n_iterations=3).fit(train, verbose=False)
    b = make_baseline("bprmf", seed=7, n_factors=16, n_iterations=3).fit(train, verbose=False)
    c = make_baseline("bprmf", seed=8, n_factors=16, n_iterations=3).fit(train, verbose=False)
    assert torch.equal(a.item_factors, b.item_factors) and not torch.equal(a.item_factors, c.item_factors)
    assert not torch.equal(
        a.item_factors,
        make_baseline("bprmf", seed=7, n_factors=16, n_iterations=1).fit(train, verbose=False).item_factors,
    )


def test_random_scores_are_seeded_and_fresh_every_step():
    model = fitted("random", seed=3)
    first, second = prefix_scores(model, "ab"), prefix_scores(model, "ab")
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], first[1])
    assert first[0].shape == (model.n_items,) and np.all((first[0] >= 0) & (first[0] < 1))
    assert not np.array_equal(first[0], prefix_scores(fitted("random", seed=4), "a")[0])


# ------------------------------------------------------------------------------------------------
# The scorer protocol
# ------------------------------------------------------------------------------------------------
STATEFUL = ["spop", "bprmf", "sknn", "vsknn"]


def fitted_any(name):
    small = dict(
        bprmf=dict(n_factors=8, n_iterations=1),
        sknn=dict(k=3, sample_size=5),
        vsknn=dict(k=3, sample_size=5, idf_weighting=1.0),
    ).get(name, {})
    return fitted(name, **small)


def parallel_scores(model, sessions, width):
    """Drive one scorer the way the evaluator does (keep -> reset -> step, session-parallel): the
    score rows of every event of every session, keyed by (session, position)."""
    cols = [model.item_index(np.array(list(s), dtype=object)) for s in sessions]
    offsets = np.concatenate([[0], np.cumsum([len(c) + 1 for c in cols])])
    # build_schedule feeds every event but the last of a session: append a dummy last event
    flat = np.concatenate([np.append(c, 0) for c in cols])
    where = {offsets[s] + k: (s, k) for s in range(len(cols)) for k in range(len(cols[s]))}
    sched = build_schedule(offsets, np.arange(len(cols)), width)
    scorer = model.session_scorer(width, "cpu")
    out = {}
    for t in range(sched.n_steps):
        w = int(sched.width[t])
        if t in sched.shrink:
            scorer.keep(torch.from_numpy(sched.shrink[t]))
        scorer.reset(torch.from_numpy(sched.starts[t, :w]))
        events = sched.inputs[t, :w]
        scores = scorer.step(torch.from_numpy(flat[events]))
        assert scores.shape == (w, model.n_items) and scores.dtype == torch.float32
        for row, e in enumerate(events):
            out[where[e]] = scores[row].numpy()
    return out


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "random"])
@pytest.mark.parametrize("width", [2, 4])
def test_session_parallel_scoring_equals_one_session_at_a_time(name, width):
    model = fitted_any(name)
    together = parallel_scores(model, TEST, width)  # 6 sessions on 2 or 4 slots: resets and shrinks
    assert len(together) == sum(len(s) for s in TEST)
    for s, session in enumerate(TEST):
        for k, alone in enumerate(prefix_scores(model, session)):
            if name == "bprmf":  # a (w x f) @ (f x n) product rounds differently for w = 1
                np.testing.assert_allclose(together[s, k], alone, rtol=1e-5, atol=1e-9)
            else:
                np.testing.assert_array_equal(together[s, k], alone)


@pytest.mark.parametrize("name", STATEFUL)
def test_reset_clears_a_slot_and_keep_carries_the_right_slots(name):
    model = fitted_any(name)
    col = lambda items: torch.tensor(model.item_index(np.array(list(items), dtype=object)))  # noqa: E731
    same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)  # noqa: E731 (BPR-MF rounding)
    scorer = model.session_scorer(3, "cpu")
    scorer.reset(torch.tensor([True, True, True]))
    scorer.step(col("abh"))
    scorer.reset(torch.tensor([False, True, False]))  # slot 1 starts a new session
    after = scorer.step(col("ccg")).numpy()
    same(after[1], prefix_scores(model, "c")[0])
    same(after[0], prefix_scores(model, "ac")[1])
    scorer.keep(torch.tensor([2, 0]))  # slot 1 ends; 2 and 0 remain, in this order
    scorer.reset(torch.tensor([False, False]))
    kept = scorer.step(col("de")).numpy()
    same(kept[0], prefix_scores(model, "hgd")[2])
    same(kept[1], prefix_scores(model, "ace")[2])


def test_unscored_items_tie_at_the_bottom_and_conservative_mode_ranks_them_last():
    model = fitted("itemknn", n_sims=2)
    scores = torch.from_numpy(np.stack(prefix_scores(model, "a")))
    unscored = np.flatnonzero(np.isinf(scores[0].numpy()))
    assert len(unscored) == model.n_items - 2 and np.all(scores[0].numpy()[unscored] < 0)
    target = torch.tensor([unscored[0]])
    assert ranks_of_targets(scores, target, "conservative").item() == model.n_items
    assert ranks_of_targets(scores, target, "standard").item() == 3
    assert ranks_of_targets(scores, target, "median").item() == 3 + 0.5 * (len(unscored) - 1)


def test_item_protocol_attributes():
    model = fitted("pop")
    assert model.n_items == 8 and list(model.item_ids) == list("abcdefgh")
    assert list(model.item_index(["c", "zz", "a"])) == [2, -1, 0]
    assert model.item_support.tolist() == [support(hand_train())[i] for i in "abcdefgh"]


# ------------------------------------------------------------------------------------------------
# A simple evaluation loop of our own (the evaluator drives the same protocol)
# ------------------------------------------------------------------------------------------------
def recall_mrr(model, test, cutoff=20, mode="conservative"):
    """Recall@cutoff and MRR@cutoff, one session at a time, with the evaluator's rank function."""
    hits = rr = n = 0
    for _, g in test.sort_values(["SessionId", "Time"], kind="stable").groupby("SessionId"):
        cols = model.item_index(g.ItemId.to_numpy())
        cols = cols[cols >= 0]
        scorer = model.session_scorer(1, "cpu")
        scorer.reset(torch.tensor([True]))
        for k in range(len(cols) - 1):
            rank = ranks_of_targets(scorer.step(torch.tensor([cols[k]])), torch.tensor([cols[k + 1]]), mode).item()
            n += 1
            hits += rank <= cutoff
            rr += (rank <= cutoff) / rank
    return hits / n, rr / n


@pytest.fixture(scope="module")
def sequential_data():
    data = markov_sessions(n_sessions=1500, n_items=300, seed=11)
    return data[data.SessionId < 1300], data[data.SessionId >= 1300]


def test_vsknn_beats_pop_by_a_wide_margin_on_sequential_data(sequential_data):
    train, test = sequential_data
    pop = recall_mrr(make_baseline("pop").fit(train, verbose=False), test)
    vsknn = recall_mrr(make_baseline("vsknn").fit(train, verbose=False), test)
    rand = recall_mrr(make_baseline("random").fit(train, verbose=False), test)
    assert vsknn[0] > pop[0] + 0.3 and vsknn[1] > 2 * pop[1]
    assert pop[0] > rand[0]


# ------------------------------------------------------------------------------------------------
# Parameters and errors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: make_baseline("knn"),
            r"unknown baseline 'knn' \(did you mean 'sknn'\?\); expected one of: random, pop",
        ),
        (
            lambda: make_baseline("pop", n_sims=5),
            r"unknown parameter 'n_sims' for baseline POP; valid parameters: top_n",
        ),
        (lambda: make_baseline("random", k=5), r"unknown parameter 'k' for baseline RANDOM; valid parameters: none"),
        (
            lambda: make_baseline("sknn", k=0),
            r"parameter k=0 of baseline SKNN is not valid: expected a value in \[1, inf",
        ),
        (
            lambda: make_baseline("itemknn", alpha="1.5"),
            r"alpha=1.5 of baseline Item-KNN .* expected a value in \[0, 1\]",
        ),
        (lambda: make_baseline("itemknn", lmbd="much"), r"parameter lmbd='much' is not valid: expected a number"),
        (
            lambda: make_baseline("vsknn", weighting="linear"),
            r"weighting='linear' of baseline V-SkNN is not valid: expected one of div, quadratic, log, same",
        ),
        (lambda: make_baseline("bprmf", learning_rate=0), r"learning_rate=0.0 .* expected a value in \(0, inf\)"),
        (lambda: parse_baseline_params("k=5,k=6"), r"parameter k is given twice"),
        (lambda: parse_baseline_params("k"), r"malformed parameter 'k' in the parameter string: expected name=value"),
    ],
)
def test_bad_parameters_are_one_line_errors(call, match):
    with pytest.raises(ParameterError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


def test_names_and_parameter_strings():
    model = make_baseline("V-SkNN", **parse_baseline_params("k=50, sample_size=500,idf_weighting=2"))
    assert model.NAME == "V-SkNN" and model.params["k"] == 50 and model.params["idf_weighting"] == 2.0
    assert type(make_baseline("Item_KNN")) is BASELINES["itemknn"] and type(make_baseline("S-POP")) is BASELINES["spop"]


def test_unfitted_baseline_says_so():
    with pytest.raises(GRU4RecError, match="the SKNN baseline is not fitted"):
        make_baseline("sknn").session_scorer(4, "cpu")


# ------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digi():
    return DATA / "diginetica_train.tsv", DATA / "diginetica_test.tsv"


@pytest.mark.parametrize(
    "args,message",
    [
        (["nonsense"], r"unknown baseline 'nonsense'"),
        (["vsknn", "-ps", "k=0"], r"parameter k=0 of baseline V-SkNN is not valid"),
        (["pop", "-ps", "top=5"], r"unknown parameter 'top' for baseline POP"),
        (["pop", "-ps", "top_n"], r"malformed parameter 'top_n'"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(digi, args, message):
    train, test = digi
    code, out, err = run("baseline", args[0], train, "-t", test, *args[1:])
    assert code == 2 and out == ""
    assert re.fullmatch(rf"gru4rec: error: {message}.*\n", err)


def test_cli_missing_train_file(tmp_path, digi):
    code, _, err = run("baseline", "pop", tmp_path / "none.tsv", "-t", digi[1])
    assert code == 2 and err == f"gru4rec: error: {tmp_path / 'none.tsv'}: file not found\n"


def test_cli_prints_the_reference_metric_lines(digi):
    train, test = digi
    code, out, err = run("baseline", "vsknn", train, "-t", test, "-m", 1, 5, 20, "-ps", "k=50", "-e", "conservative")
    assert code == 0, err
    lines = re.findall(r"^Recall@(\d+): \d\.\d{6} MRR@(\d+): \d\.\d{6}$", out, re.M)
    assert lines == [("1", "1"), ("5", "5"), ("20", "20")]


# ------------------------------------------------------------------------------------------------
# End to end through gru4rec.evaluate
# ------------------------------------------------------------------------------------------------
def test_evaluator_ranks_baselines_like_the_reference_loop(sequential_data):
    from gru4rec import evaluate

    train, test = sequential_data
    for name in ["pop", "spop", "itemknn", "vsknn"]:
        model = make_baseline(name).fit(train, verbose=False)
        res = evaluate(model, test, cutoffs=(20,), mode="conservative", batch_size=64)
        assert (res.recall[20], res.mrr[20]) == pytest.approx(recall_mrr(model, test), rel=1e-9)


def test_gru4rec_and_vsknn_beat_pop_by_a_wide_margin(markov_data):
    from gru4rec import GRU4Rec, evaluate

    train, test = markov_data
    recall = {}
    models = {name: make_baseline(name).fit(train, verbose=False) for name in ["pop", "vsknn"]}
    for name, model in models.items():  # the baselines first: they fail fast without the evaluator protocol
        recall[name] = evaluate(model, test, cutoffs=(20,), mode="conservative").recall[20]
    gru = GRU4Rec(layers=[64], n_epochs=3, batch_size=32, n_sample=128, seed=1, device="cpu")
    gru.fit(train, verbose=False)
    recall["gru4rec"] = evaluate(gru, test, cutoffs=(20,), mode="conservative").recall[20]
    assert recall["vsknn"] > recall["pop"] + 0.3 and recall["gru4rec"] > recall["pop"] + 0.3


def test_every_model_runs_end_to_end_on_the_real_diginetica_sample(digi):
    from gru4rec import GRU4Rec, evaluate, read_events

    train, test = (read_events(p) for p in digi)
    models = {
        name: make_baseline(name, n_iterations=2) if name == "bprmf" else make_baseline(name) for name in BASELINES
    }
    for model in models.values():
        model.fit(train, verbose=False)
    models["gru4rec"] = GRU4Rec(layers=[32], n_epochs=2, batch_size=16, n_sample=32, device="cpu")
    models["gru4rec"].fit(train, verbose=False)
    for name, model in models.items():
        res = evaluate(model, test, cutoffs=(1, 5, 20), mode="conservative")
        values = [res.recall[c] for c in (1, 5, 20)] + [res.mrr[c] for c in (1, 5, 20)]
        assert all(np.isfinite(v) and 0 <= v <= 1 for v in values), name
        assert res.n_predictions > 0
