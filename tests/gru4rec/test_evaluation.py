"""Ranking under each tie mode against brute force; session-parallel evaluation against per-session scoring."""

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec import GRU4Rec, evaluate, recommend, topk
from gru4rec.errors import DataError, ParameterError
from gru4rec.evaluation import ranks_of_targets
from gru4rec.metrics import MetricSums


def brute_rank(row, target, mode, u=None):
    t = row[target]
    higher = sum(1 for v in row if v > t)
    equal = sum(1 for v in row if v == t)
    if mode == "standard":
        return higher + 1
    if mode == "conservative":
        return higher + equal
    if mode == "median":
        return higher + 1 + 0.5 * (equal - 1)
    return higher + 1 + int(np.floor(u * equal))


@pytest.mark.parametrize("mode", ["standard", "conservative", "median"])
def test_tie_modes_against_brute_force(mode):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 12)).astype(np.float32)  # many ties
    targets = rng.integers(0, 12, size=50)
    got = ranks_of_targets(torch.tensor(scores), torch.tensor(targets), mode).numpy()
    want = [brute_rank(scores[i], targets[i], mode) for i in range(50)]
    np.testing.assert_array_equal(got, want)


def test_tiebreaking_places_the_target_uniformly_among_its_ties():
    scores = torch.zeros((20000, 5))  # all five items tie
    targets = torch.zeros(20000, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    ranks = ranks_of_targets(scores, targets, "tiebreaking", g).numpy()
    counts = np.bincount(ranks.astype(int), minlength=6)[1:]
    assert set(np.unique(ranks)) == {1, 2, 3, 4, 5}
    assert np.all(np.abs(counts / 20000 - 0.2) < 0.02)
    again = ranks_of_targets(scores, targets, "tiebreaking", torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(ranks, again)


@pytest.fixture(scope="module")
def small_model(markov_data):
    train, _ = markov_data
    model = GRU4Rec(layers=[32], n_epochs=2, batch_size=32, n_sample=64, loss="cross-entropy", seed=3, device="cpu")
    model.fit(train, verbose=False)
    return model


def per_session_metrics(model, test, cutoffs, mode):
    """Each session on its own, one event at a time, with a brute-force rank over all items."""
    hits = {c: 0.0 for c in cutoffs}
    rr = {c: 0.0 for c in cutoffs}
    n = 0
    net = model.net
    for _, g in test.sort_values(["SessionId", "Time"], kind="stable").groupby("SessionId", sort=False):
        idx = model.item_index(g.ItemId.to_numpy())
        idx = idx[idx >= 0]
        H = net.init_hidden(1)
        for k in range(len(idx) - 1):
            with torch.no_grad():
                out = net.forward_hidden(torch.tensor([idx[k]]), H)
                scores = net.score_all(out)[0].numpy()
            r = brute_rank(scores, idx[k + 1], mode)
            n += 1
            for c in cutoffs:
                if r <= c:
                    hits[c] += 1
                    rr[c] += 1.0 / r
    return {c: hits[c] / n for c in cutoffs}, {c: rr[c] / n for c in cutoffs}, n


@pytest.mark.parametrize("mode", ["standard", "conservative"])
def test_session_parallel_evaluation_equals_per_session_scoring(small_model, markov_data, mode):
    _, test = markov_data
    test = test[test.SessionId < test.SessionId.min() + 120]
    # an unknown item in the middle of a session is dropped; the session continues around it
    test = pd.concat(
        [
            test,
            pd.DataFrame({"SessionId": [test.SessionId.iloc[0]], "ItemId": [10**9], "Time": [test.Time.iloc[0] + 1]}),
        ]
    )
    res = evaluate(small_model, test, cutoffs=(1, 5, 20), mode=mode, batch_size=7)
    recall, mrr, n = per_session_metrics(small_model, test, (1, 5, 20), mode)
    assert res.n_dropped == 1
    assert res.n_predictions == n
    for c in (1, 5, 20):
        assert res.recall[c] == pytest.approx(recall[c], abs=1e-12)
        assert res.mrr[c] == pytest.approx(mrr[c], rel=1e-9)
    lines = res.format_lines()  # per cut-off: the reference line, then the other metrics
    assert lines[4].startswith("Recall@20: ") and " MRR@20: " in lines[4]
    assert lines[5].startswith("NDCG@20: ") and " Coverage@20: " in lines[5] and " Popularity@20: " in lines[5]


def test_last_target_protocol_scores_only_each_sessions_last_event(small_model, markov_data):
    _, test = markov_data
    test = test[test.SessionId < test.SessionId.min() + 60]
    res = evaluate(small_model, test, cutoffs=(5,), targets="last", batch_size=4)
    hits, n = 0, 0
    for _, g in test.sort_values(["SessionId", "Time"]).groupby("SessionId"):
        idx = small_model.item_index(g.ItemId.to_numpy())
        H = small_model.net.init_hidden(1)
        with torch.no_grad():
            for i in idx[:-1]:
                out = small_model.net.forward_hidden(torch.tensor([i]), H)
            scores = small_model.net.score_all(out)[0].numpy()
        hits += brute_rank(scores, idx[-1], "standard") <= 5
        n += 1
    assert res.n_predictions == n and res.recall[5] == pytest.approx(hits / n)


def test_evaluation_batch_size_does_not_change_results(small_model, markov_data):
    _, test = markov_data
    a = evaluate(small_model, test, cutoffs=(5, 20), batch_size=3)
    b = evaluate(small_model, test, cutoffs=(5, 20), batch_size=500)
    assert a.recall == pytest.approx(b.recall) and a.mrr == pytest.approx(b.mrr)


@pytest.mark.parametrize("mode", ["standard", "tiebreaking"])
def test_summing_the_metrics_step_by_step_or_in_batches_gives_the_same_results(
    small_model, markov_data, mode, monkeypatch
):
    # many cut-offs flush sooner (memory); the result must not depend on when the sums are taken
    _, test = markov_data
    a = evaluate(small_model, test, cutoffs=range(1, 21), mode=mode).as_dict()
    monkeypatch.setattr(MetricSums, "FLUSH_ELEMENTS", 1)
    b = evaluate(small_model, test, cutoffs=range(1, 21), mode=mode).as_dict()
    a.pop("eval_seconds"), b.pop("eval_seconds")
    assert a == pytest.approx(b)


def test_bad_evaluation_arguments(small_model, markov_data):
    _, test = markov_data
    with pytest.raises(ParameterError, match="tie mode"):
        evaluate(small_model, test, mode="random")
    with pytest.raises(ParameterError, match="cut-offs"):
        evaluate(small_model, test, cutoffs=(0, 20))
    unknown = pd.DataFrame({"SessionId": [1, 1], "ItemId": [10**9, 10**9 + 1], "Time": [1, 2]})
    with pytest.raises(DataError, match="no test event"):
        evaluate(small_model, unknown)


def test_recommend_matches_full_scores(small_model, markov_data):
    train, _ = markov_data
    sessions = [list(train.ItemId[:3]), list(train.ItemId[10:11]), [10**9], list(train.ItemId[20:27])]
    recs, n_unknown = recommend(small_model, sessions, k=5)
    assert n_unknown == 1 and recs[2] == []
    for s, r in zip(sessions, recs):
        if not r:
            continue
        idx = small_model.item_index(s)
        H = small_model.net.init_hidden(1)
        with torch.no_grad():
            for i in idx:
                out = small_model.net.forward_hidden(torch.tensor([i]), H)
            scores = small_model.net.score_all(out)[0]
        top = torch.topk(scores, 5)
        assert [item for item, _ in r] == list(small_model.item_ids[top.indices.numpy()])
        np.testing.assert_allclose([sc for _, sc in r], top.values.numpy(), rtol=1e-5)
    single, _ = recommend(small_model, sessions[0], k=3)
    assert [i for i, _ in single[0]] == [i for i, _ in recs[0][:3]]


def test_first_session_with_one_known_item_and_fewer_sessions_than_the_batch(small_model, markov_data):
    train, _ = markov_data
    known = list(train.ItemId.unique()[:6])
    # session 1 keeps one known item once the unknown one is dropped, session 4 none: 3 sessions
    # are left for a batch of 512
    test = pd.DataFrame(
        {
            "SessionId": [1, 1, 2, 2, 2, 3, 3, 4],
            "ItemId": [10**9, known[0], known[1], known[2], known[3], known[4], known[5], 10**9 + 1],
            "Time": range(8),
        }
    )
    res = evaluate(small_model, test, cutoffs=(1, 5, 20))
    recall, mrr, n = per_session_metrics(small_model, test, (1, 5, 20), "standard")
    assert res.n_dropped == 2 and res.n_predictions == n == 3
    assert res.recall == pytest.approx(recall, abs=1e-12) and res.mrr == pytest.approx(mrr, rel=1e-9)
    recs, n_unknown = recommend(small_model, [[10**9, known[0]], known[1:4], known[4:6], [10**9 + 1]], k=3)
    assert n_unknown == 2 and recs[3] == []
    for r, s in zip(recs, [[known[0]], known[1:4], known[4:6]]):
        single, _ = recommend(small_model, [s], k=3)
        assert [i for i, _ in r] == [i for i, _ in single[0]]


class PreviousItem:
    """A model without a GRU, through the evaluator's protocol only: it scores 1 for the item that
    came before the current one in the same session, 0 for every other item."""

    n_items = 4

    def item_index(self, ids):
        ids = np.asarray(ids)
        return np.where(np.isin(ids, np.arange(4)), ids, -1)

    def require_trained(self):
        pass

    def session_scorer(self, width, device):
        return PreviousItemScorer(width)


class PreviousItemScorer:
    def __init__(self, width):
        self.prev = torch.full((width,), -1)
        self.cur = torch.full((width,), -1)

    def keep(self, idx):
        self.prev, self.cur = self.prev[idx], self.cur[idx]

    def reset(self, new):
        self.prev[new], self.cur[new] = -1, -1

    def step(self, items):
        self.prev, self.cur = self.cur, items.clone()
        scores = torch.zeros((len(items), 4))
        rows = torch.nonzero(self.prev >= 0).squeeze(1)
        scores[rows, self.prev[rows]] = 1.0
        return scores


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_any_model_of_the_protocol_is_evaluated_session_by_session(batch_size):
    # conservative ties: a hit at 1 only where the item two events back equals the target, which
    # needs the scorer's state to follow each session exactly (reset at starts, rows kept on shrink)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 7, size=80)
    test = pd.DataFrame(
        {
            "SessionId": np.repeat(np.arange(80), lengths),
            "ItemId": rng.integers(0, 5, size=lengths.sum()),  # item 4 is unknown
            "Time": np.arange(lengths.sum()),
        }
    )
    res = evaluate(PreviousItem(), test, cutoffs=(1,), mode="conservative", batch_size=batch_size)
    hits, n = 0, 0
    for _, g in test.groupby("SessionId"):
        s = [i for i in g.ItemId if i < 4]
        n += max(len(s) - 1, 0)
        hits += sum(s[k - 1] == s[k + 1] for k in range(1, len(s) - 1))
    assert res.n_predictions == n and res.n_dropped == int((test.ItemId == 4).sum())
    assert res.recall[1] == pytest.approx(hits / n) and hits > 0


def test_recommend_rejects_a_batch_size_below_one(small_model, markov_data):
    train, _ = markov_data
    with pytest.raises(ParameterError, match="batch_size must be a positive integer, got 0"):
        recommend(small_model, [list(train.ItemId.unique()[:2])], batch_size=0)


# -- every metric of a step, against a sort-based computation over whole rows ----------------------
def brute_item_ranks(row, mode):
    """Rank of every item of `row` as if it were the target (deterministic modes), by sorting."""
    srt = np.sort(row)
    higher = len(row) - np.searchsorted(srt, row, side="right")
    equal = np.searchsorted(srt, row, side="right") - np.searchsorted(srt, row, side="left")
    return {"standard": higher + 1, "conservative": higher + equal, "median": higher + 1 + 0.5 * (equal - 1)}[mode]


def brute_metrics(steps, cutoffs, mode, support, seed=0):
    """Recall, MRR, NDCG, coverage, popularity of the (scores, targets) steps, as defined in gru4rec.metrics.
    For tiebreaking the targets' ranks use the evaluator's draws (one per row); the lists are not checked."""
    g = torch.Generator().manual_seed(seed)
    out = {m: dict.fromkeys(cutoffs, 0.0) for m in ("recall", "mrr", "ndcg")}
    seen = {c: set() for c in cutoffs}
    pop = {c: [] for c in cutoffs}
    n = 0
    for scores, targets in steps:
        u = torch.rand(len(targets), generator=g, dtype=torch.float64).numpy() if mode == "tiebreaking" else None
        for r, (row, t) in enumerate(zip(scores, targets)):
            if mode == "tiebreaking":
                srt = np.sort(row)
                equal = np.searchsorted(srt, row[t], "right") - np.searchsorted(srt, row[t], "left")
                rank = len(row) - np.searchsorted(srt, row[t], "right") + 1 + np.floor(u[r] * equal)
                ranks = None
            else:
                ranks = brute_item_ranks(row, mode)
                rank = ranks[t]
            n += 1
            for c in cutoffs:
                if rank <= c:
                    out["recall"][c] += 1
                    out["mrr"][c] += 1 / rank
                    out["ndcg"][c] += 1 / np.log2(rank + 1)
                if ranks is not None:
                    listed = np.flatnonzero(ranks <= c)
                    seen[c].update(listed.tolist())
                    pop[c] += list(support[listed] / support.max())
    res = {m: {c: v / n for c, v in d.items()} for m, d in out.items()}
    if mode != "tiebreaking":
        res["coverage"] = {c: len(seen[c]) / steps[0][0].shape[1] for c in cutoffs}
        res["popularity"] = {c: float(np.mean(pop[c])) if pop[c] else np.nan for c in cutoffs}
    return res


def metric_sums(steps, cutoffs, mode, support, seed=0):
    from gru4rec.metrics import MetricSums

    sums = MetricSums(cutoffs, mode, steps[0][0].shape[1], support, seed, torch.device("cpu"))
    for scores, targets in steps:
        sums.add(torch.tensor(scores), torch.tensor(targets))
    sums.flush()
    return sums


def tied_steps(rng, n_items, kind):
    """Score matrices of a few steps: 'ties' (few distinct values), 'unscored' (a few real scores,
    -inf elsewhere, as the kNN baselines give), 'distinct' (continuous scores)."""
    steps = []
    for w in (7, 5, 1):
        if kind == "ties":
            s = rng.integers(0, 4, size=(w, n_items)).astype(np.float32)
        elif kind == "distinct":
            s = rng.standard_normal((w, n_items)).astype(np.float32)
        else:
            s = np.full((w, n_items), -np.inf, dtype=np.float32)
            for row in s:
                row[rng.choice(n_items, size=rng.integers(0, 8), replace=False)] = rng.integers(1, 4)
        steps.append((s, rng.integers(0, n_items, size=w)))
    return steps


# 40: larger than the top-k (max cut-off + 1), so rows whose ties spill beyond it are recounted.
# The larger catalogue takes gru4rec.topk's block path (with a last, partial block); its columns
# reach the lists with 'distinct' scores, its values alone with the others (their rows end in ties)
LARGE_CATALOGUE = topk.MIN_BLOCKS_PER_K * 21 * topk.BLOCK + 37


@pytest.mark.parametrize("n_items", [40, LARGE_CATALOGUE])
@pytest.mark.parametrize("kind", ["ties", "unscored", "distinct"])
@pytest.mark.parametrize("mode", ["standard", "conservative", "median", "tiebreaking"])
def test_every_metric_against_brute_force(mode, kind, n_items):
    rng = np.random.default_rng(1)
    support = rng.integers(1, 100, size=n_items)
    cutoffs = (1, 3, 10, 20)
    steps = tied_steps(rng, n_items, kind)
    got = metric_sums(steps, cutoffs, mode, support).results()
    want = brute_metrics(steps, cutoffs, mode, support)
    for metric, values in want.items():
        for c in cutoffs:
            assert got[metric][c] == pytest.approx(values[c], rel=1e-12, nan_ok=True), (metric, c)


def test_fewer_items_than_the_cut_off_lists_the_whole_catalogue():
    rng = np.random.default_rng(2)
    steps = [(rng.integers(0, 2, size=(6, 5)).astype(np.float32), rng.integers(0, 5, size=6))]
    support = np.arange(1, 6)
    for mode in ("standard", "conservative", "median"):
        got = metric_sums(steps, (2, 20), mode, support).results()
        want = brute_metrics(steps, (2, 20), mode, support)
        assert got["coverage"][20] == want["coverage"][20] == 1.0
        assert got["popularity"] == pytest.approx(want["popularity"]) and got["recall"][20] == 1.0
    tb = metric_sums(steps, (2, 20), "tiebreaking", support)
    assert tb.list_sums[:, 1].tolist() == [12.0, 30.0]


def test_tiebreaking_lists_have_n_items_drawn_uniformly_among_the_tied_ones():
    # items 0 and 1 score above the rest, which all tie: each top-5 list is 0, 1 and three tied items
    n_items, rows = 40, 4000
    scores = np.zeros((rows, n_items), dtype=np.float32)
    scores[:, :2] = 1.0
    support = np.ones(n_items)
    support[2:21] = 0.0  # half of the 38 tied items have no support: popularity ~ (2 + 3 * 0.5) / 5
    sums = metric_sums([(scores, np.zeros(rows, dtype=np.int64))], (5,), "tiebreaking", support)
    res = sums.results()
    assert sums.list_sums[:, 1].tolist() == [5.0 * rows]
    assert res["coverage"][5] == 1.0
    assert res["popularity"][5] == pytest.approx(3.5 / 5, abs=0.01)
    again = metric_sums([(scores, np.zeros(rows, dtype=np.int64))], (5,), "tiebreaking", support).results()
    assert again == res  # seeded


def test_fast_ranks_equal_full_pass_ranks_for_every_mode():
    # the evaluator's top-k ranks against ranks_of_targets' two passes over every item, on random
    # data with ties and -inf; tiebreaking uses the same draws, so even its ranks agree
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((300, 500)).astype(np.float32)
    scores[:100] = np.round(scores[:100])  # heavy ties
    scores[100:150, 20:] = -np.inf
    targets = rng.integers(0, 500, size=300)
    for mode in ("standard", "conservative", "median", "tiebreaking"):
        full = ranks_of_targets(torch.tensor(scores), torch.tensor(targets), mode, torch.Generator().manual_seed(0))
        res = metric_sums([(scores, targets)], (1, 5, 20), mode, None).results()
        for c in (1, 5, 20):
            inside = full <= c
            assert res["recall"][c] == pytest.approx(inside.double().mean().item(), rel=1e-12)
            assert res["mrr"][c] == pytest.approx((inside / full).mean().item(), rel=1e-12)
        assert "popularity" not in res


def test_evaluation_reports_every_metric_under_the_agreed_keys(small_model, markov_data):
    _, test = markov_data
    res = evaluate(small_model, test[test.SessionId < test.SessionId.min() + 50], cutoffs=(5, 20))
    keys = set(res.as_dict())
    for c in (5, 20):
        assert {f"{m}_at_{c}" for m in ("recall", "mrr", "ndcg", "coverage", "popularity")} <= keys
        assert 0 < res.ndcg[c] <= 1 and 0 < res.coverage[c] <= 1 and 0 < res.popularity[c] <= 1
    assert res.ndcg[20] >= res.ndcg[5] and res.coverage[20] >= res.coverage[5]
    assert (
        "popularity_at_1"
        not in evaluate(
            PreviousItem(), pd.DataFrame({"SessionId": [1, 1, 1], "ItemId": [0, 1, 2], "Time": [1, 2, 3]}), cutoffs=(1,)
        ).as_dict()
    )


def test_last_target_protocol_with_a_scorer_without_step_rows():
    # PreviousItem's scorer has no step_rows: the evaluator scores all slots and keeps the last rows
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 7, size=60)
    test = pd.DataFrame(
        {
            "SessionId": np.repeat(np.arange(60), lengths),
            "ItemId": rng.integers(0, 4, size=lengths.sum()),
            "Time": np.arange(lengths.sum()),
        }
    )
    res = evaluate(PreviousItem(), test, cutoffs=(1,), mode="conservative", batch_size=5, targets="last")
    sessions = [list(g.ItemId) for _, g in test.groupby("SessionId")]
    assert res.n_predictions == sum(len(s) >= 2 for s in sessions)
    hits = sum(len(s) >= 3 and s[-3] == s[-1] for s in sessions)
    assert res.recall[1] == pytest.approx(hits / res.n_predictions) and hits > 0


def test_every_baseline_has_item_support_for_the_popularity_metric(markov_data):
    from gru4rec.baselines import BASELINES, make_baseline

    train, test = markov_data
    train = train[train.SessionId < train.SessionId.min() + 300]
    test = test[test.SessionId < test.SessionId.min() + 30]
    support = train.ItemId.value_counts()
    for name in BASELINES:
        model = make_baseline(name, **({"n_iterations": 1} if name == "bprmf" else {})).fit(train, verbose=False)
        np.testing.assert_array_equal(model.item_support, support.reindex(model.item_ids).to_numpy())
        res = evaluate(model, test, cutoffs=(5,), mode="conservative")
        assert 0 <= res.popularity[5] <= 1 and 0 < res.coverage[5] <= 1, name


# -- per-event ranks (evaluate(ranks=True)) ----------------------------------------------------------
def metrics_from_ranks(rank, cutoffs):
    """Recall, MRR and NDCG at each cut-off from a ranks column alone."""
    rank = np.asarray(rank, dtype=np.float64)
    out = {m: {} for m in ("recall", "mrr", "ndcg")}
    for c in cutoffs:
        hit = rank <= c
        out["recall"][c] = hit.mean()
        out["mrr"][c] = np.where(hit, 1 / rank, 0).mean()
        out["ndcg"][c] = np.where(hit, 1 / np.log2(rank + 1), 0).mean()
    return out


def with_unknown_items(test, n_sessions):
    """The first sessions of `test`, an unknown item in the middle of some, rows shuffled."""
    test = test[test.SessionId < test.SessionId.min() + n_sessions]
    firsts = test.groupby("SessionId").head(1).iloc[::3]
    unknown = firsts.assign(ItemId=10**9, Time=firsts.Time + 0.5)
    return pd.concat([test, unknown]).sample(frac=1.0, random_state=0)


@pytest.mark.parametrize("mode", ["standard", "conservative", "median", "tiebreaking"])
@pytest.mark.parametrize("model_name", ["gru4rec", "pop", "itemknn"])
def test_the_ranks_are_those_the_metrics_count(small_model, markov_data, mode, model_name):
    # POP and Item-KNN tie massively (rows counted over the whole catalogue), GRU4Rec barely
    from gru4rec.baselines import make_baseline

    train, test = markov_data
    model = small_model if model_name == "gru4rec" else make_baseline(model_name).fit(train, verbose=False)
    test = with_unknown_items(test, 150)
    cutoffs = (1, 5, 10, 20)
    res = evaluate(model, test, cutoffs=cutoffs, mode=mode, batch_size=16, ranks=True)
    ranks = res.ranks
    assert list(ranks.columns) == ["SessionId", "Position", "ItemId", "Rank"] and len(ranks) == res.n_predictions
    got = metrics_from_ranks(ranks.Rank, cutoffs)
    for metric, values in got.items():
        assert values == pytest.approx(getattr(res, metric), rel=1e-12, abs=1e-15), metric
    assert np.isinf(ranks.Rank).any() and (ranks.Rank[np.isfinite(ranks.Rank)] <= 20).all()
    plain = evaluate(model, test, cutoffs=cutoffs, mode=mode, batch_size=16).as_dict()
    assert {k: v for k, v in plain.items() if k != "eval_seconds"} == pytest.approx(
        {k: v for k, v in res.as_dict().items() if k != "eval_seconds"}
    )
    if mode == "tiebreaking":
        return
    # each row is its event: the session, the place among all its events (the unknown ones too)
    order = test.sort_values(["SessionId", "Time"], kind="stable")
    order = order.assign(Position=order.groupby("SessionId").cumcount())
    events = order[(order.ItemId != 10**9) & (order.Position > 0)]
    merged = ranks.merge(events, on=["SessionId", "Position"], suffixes=("", "_test"), validate="1:1")
    assert len(merged) == len(ranks) and (merged.ItemId == merged.ItemId_test).all()
    first_known = order[order.ItemId != 10**9].groupby("SessionId").Position.min()
    assert (ranks.Position > ranks.SessionId.map(first_known)).all()  # the first known event is never a target
    if model_name == "gru4rec":
        recall, mrr, n = per_session_metrics(model, test, (20,), mode)
        assert n == len(ranks) and (ranks.Rank <= 20).mean() == pytest.approx(recall[20], abs=1e-12)


def test_ranks_of_the_last_target_protocol_are_each_sessions_last_event(small_model, markov_data):
    _, test = markov_data
    test = test[test.SessionId < test.SessionId.min() + 60]
    res = evaluate(small_model, test, cutoffs=(5, 20), targets="last", batch_size=4, ranks=True)
    lengths = test.groupby("SessionId").size()
    assert (res.ranks.Position == res.ranks.SessionId.map(lengths) - 1).all()
    assert len(res.ranks) == res.n_predictions == (lengths >= 2).sum()
    assert metrics_from_ranks(res.ranks.Rank, (5, 20))["mrr"] == pytest.approx(res.mrr, rel=1e-12)
    assert evaluate(small_model, test, cutoffs=(20,)).ranks is None
