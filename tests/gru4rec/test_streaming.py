"""The streaming recommender: its results equal recommend() on the same sessions, event by event."""

from collections import OrderedDict

import numpy as np
import pytest
import torch

from gru4rec import GRU4Rec, recommend
from gru4rec.errors import GRU4RecError, ParameterError
from gru4rec.streaming import MIN_ROWS, SessionRecommender

UNKNOWN = [10**9, -5]  # item ids no model here knows


def fit(train, **params):
    p = dict(layers=[16], n_epochs=1, batch_size=16, n_sample=32, dropout_p_hidden=0.3)
    p.update(params)
    model = GRU4Rec(p, device="cpu", seed=1)
    model.fit(train.iloc[:2000], verbose=False)
    return model


@pytest.fixture(scope="module", params=["shared", "separate-2-layers", "none"])
def model(request, markov_data):
    train, _ = markov_data
    return {
        "shared": lambda: fit(train, constrained_embedding=True),
        "separate-2-layers": lambda: fit(
            train, constrained_embedding=False, embedding=8, layers=[16, 12], dropout_p_embed=0.2
        ),
        "none": lambda: fit(train, constrained_embedding=False, embedding=0, loss="bpr-max"),
    }[request.param]()


def random_stream(model, rng, n_sessions=150, max_len=8, p_unknown=0.1):
    """Events of random sessions (some items unknown), the sessions interleaved at random as in live
    traffic; each session's events stay in order."""
    queues = {
        f"s{s}": [
            int(rng.choice(UNKNOWN)) if rng.random() < p_unknown else int(rng.choice(model.item_ids))
            for _ in range(int(rng.integers(1, max_len + 1)))
        ]
        for s in range(n_sessions)
    }
    turns = [s for s, q in queues.items() for _ in q]
    rng.shuffle(turns)
    return [(s, queues[s].pop(0)) for s in turns]


def assert_same_ranking(items, scores, expected):
    """Same ids and scores as recommend()'s [(id, score)], up to float rounding (the states are
    computed in batches of other sizes); ids may only swap places where their scores tie."""
    ids, expected_scores = [i for i, _ in expected], np.array([s for _, s in expected])
    assert len(items) == len(ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    for i in np.flatnonzero(np.array(list(items), dtype=object) != np.array(ids, dtype=object)):
        gaps = [abs(expected_scores[i] - expected_scores[j]) for j in (i - 1, i + 1) if 0 <= j < len(ids)]
        assert min(gaps) < 1e-4, (i, items, ids)


def assert_matches(result, expected):
    assert_same_ranking(result.items.tolist(), result.scores, expected)


def test_every_event_equals_recommend_on_the_session_so_far(model):
    rng = np.random.default_rng(0)
    stream = random_stream(model, rng)
    rec = SessionRecommender(model, k=10)
    results, prefixes, history = [], [], {}
    for s, item in stream:
        results.append(rec.update(s, item))
        history.setdefault(s, []).append(item)
        prefixes.append([i for i in history[s] if i not in UNKNOWN])
    expected, _ = recommend(model, prefixes, k=10)
    live = [s for s, items in history.items() if set(items) - set(UNKNOWN)]
    assert len(rec) == len(live) > MIN_ROWS  # the store grew past its first rows
    for (s, item), r, prefix, exp in zip(stream, results, prefixes, expected):
        assert r.session_id == s and r.unknown_item == (item in UNKNOWN) and r.n_events == len(prefix)
        assert_matches(r, exp)
    assert any(r.unknown_item and r.n_events > 0 for r in results)  # unknown events mid-session were tested
    assert any(r.n_events == 0 and len(r.items) == 0 for r in results)  # sessions opened by an unknown item


def test_batched_updates_equal_one_event_at_a_time(model):
    rng = np.random.default_rng(1)
    stream = random_stream(model, rng, n_sessions=60)
    single = SessionRecommender(model, k=7)
    one_by_one = [single.update(s, i) for s, i in stream]
    batched, rec, start = [], SessionRecommender(model, k=7), 0
    while start < len(stream):  # batches of random size; a session may occur several times in one
        n = int(rng.integers(1, 40))
        sids, items = zip(*stream[start : start + n])
        batched += rec.update_many(list(sids), np.array(items))
        start += n
    assert len(batched) == len(one_by_one)
    for a, b in zip(batched, one_by_one):
        assert (a.session_id, a.n_events, a.unknown_item) == (b.session_id, b.n_events, b.unknown_item)
        assert_matches(a, list(zip(b.items.tolist(), b.scores)))


def test_evicted_sessions_restart_from_an_empty_state(model):
    a, b, c, d = (int(x) for x in model.item_ids[:4])
    rec = SessionRecommender(model, k=5, max_sessions=2)
    rec.update("A", a)
    rec.update("B", b)
    r = rec.update("A", c)  # A continues
    assert r.n_events == 2
    assert_matches(r, recommend(model, [[a, c]], k=5)[0][0])
    rec.update("C", d)  # the store is full: B (least recently used) goes
    assert "B" not in rec and "A" in rec and rec.n_evicted == 1
    r = rec.update("B", c)  # B restarts from an empty state, evicting A
    assert r.n_events == 1 and "A" not in rec
    assert_matches(r, recommend(model, [[c]], k=5)[0][0])
    rec.recommendations(["C"])  # a query counts as use: B is now the oldest
    rec.update("D", a)
    assert "B" not in rec and set(rec.store.sessions) == {"C", "D"}
    # in one batch, a new session does not evict a session of the same batch
    new, old = rec.update_many(["E", "C"], [b, c])
    assert new.n_events == 1 and old.n_events == 2 and set(rec.store.sessions) == {"C", "E"}


def test_eviction_under_random_traffic_follows_least_recently_used(model):
    rng = np.random.default_rng(2)
    stream = random_stream(model, rng, n_sessions=40, p_unknown=0.0)
    rec = SessionRecommender(model, k=5, max_sessions=6)
    lru, state, prefixes, results = OrderedDict(), {}, [], []
    for s, item in stream:
        if s not in lru and len(lru) == 6:
            gone, _ = lru.popitem(last=False)
            state.pop(gone)
        lru[s] = True
        lru.move_to_end(s)
        state.setdefault(s, []).append(item)
        prefixes.append(list(state[s]))
        results.append(rec.update(s, item))
    assert rec.n_evicted > 20
    for r, exp in zip(results, recommend(model, prefixes, k=5)[0]):
        assert_matches(r, exp)


def test_exclude_seen_and_allowed_items_filter_the_full_ranking(model):
    rng = np.random.default_rng(3)
    session = [int(x) for x in rng.choice(model.item_ids, 6)]
    allowed = [int(x) for x in rng.choice(model.item_ids, 40, replace=False)] + session[:2]
    ranking = recommend(model, [session], k=model.n_items)[0][0]
    with pytest.warns(UserWarning, match="2 of 44 ids are unknown"):
        rec = SessionRecommender(model, k=10, exclude_seen=True, allowed_items=allowed + UNKNOWN)
    for item in session:
        r = rec.update("s", item)
    expected = [(i, sc) for i, sc in ranking if i in set(allowed) and i not in set(session)][:10]
    assert_matches(r, expected)
    assert_matches(
        rec.update("s", 10**9, exclude_seen=False),  # per-call override, state unchanged
        [(i, sc) for i, sc in ranking if i in set(allowed)][:10],
    )
    everything = SessionRecommender(model, k=model.n_items, exclude_seen=True)
    for item in session:
        r = everything.update("s", item)
    assert len(r.items) == model.n_items - len(set(session)) and not set(session) & set(r.items.tolist())


def test_session_embedding_is_the_state_that_is_scored(model):
    items = [int(x) for x in model.item_ids[[3, 1, 4, 1, 5]]]
    rec = SessionRecommender(model, k=5, return_embedding=True, return_scores=False)
    rec.update_many(["x"] * 4, items[:4])
    r = rec.update("x", items[4])
    assert r.scores is None and r.embedding.shape == (model.net.layers[-1],)
    np.testing.assert_array_equal(r.embedding, rec.embedding("x"))
    scores = model.net.score_all(torch.from_numpy(r.embedding)[None])[0]
    expected = recommend(model, [items], k=5)[0][0]
    assert r.items.tolist() == [i for i, _ in expected]
    np.testing.assert_allclose(scores[model.item_index(r.items)].numpy(), [s for _, s in expected], rtol=1e-5)
    assert rec.embedding("never seen") is None


def test_unknown_items_leave_the_state_unchanged(model):
    rec = SessionRecommender(model, k=5)
    r = rec.update("s", UNKNOWN[0])
    assert r.unknown_item and r.n_events == 0 and len(r.items) == 0 and "s" not in rec
    first = rec.update("s", int(model.item_ids[0]))
    again = rec.update("s", "not-an-item")
    assert again.unknown_item and again.n_events == 1
    np.testing.assert_array_equal(again.items, first.items)
    np.testing.assert_array_equal(again.scores, first.scores)
    assert rec.feed(["s", "s"], [UNKNOWN[1], int(model.item_ids[1])]).tolist() == [False, True]
    assert rec.recommendations(["s"])[0].n_events == 2


def test_end_forgets_the_session(model):
    i, j = (int(x) for x in model.item_ids[:2])
    rec = SessionRecommender(model, k=5)
    rec.update("s", i)
    assert rec.end("s") and "s" not in rec and not rec.end("s")
    r = rec.update("s", j)
    assert r.n_events == 1
    assert_matches(r, recommend(model, [[j]], k=5)[0][0])


@pytest.mark.parametrize(
    "kwargs, call, message",
    [
        ({"k": 0}, None, "k must be a positive integer, got 0"),
        ({"max_sessions": 1.5}, None, "max_sessions must be a positive integer, got 1.5"),
        ({"exclude_seen": "yes"}, None, "exclude_seen must be True or False, got 'yes'"),
        ({"allowed_items": UNKNOWN}, None, "allowed_items: none of the 2 ids is an item known to the model"),
        ({"allowed_items": "abc"}, None, "allowed_items must be a one-dimensional sequence of ids, got str"),
        ({}, lambda r: r.update("s", 1, k=-3), "k must be a positive integer, got -3"),
        (
            {},
            lambda r: r.update_many(["a", "b"], [1]),
            "session_ids and item_ids must have the same length, got 2 and 1",
        ),
        ({}, lambda r: r.update(["a"], 1), "session ids must be hashable (a string or an integer), got list"),
        ({}, lambda r: r.update_many("ab", [1, 2]), "session_ids must be a one-dimensional sequence of ids, got str"),
    ],
)
def test_bad_arguments_are_one_line_parameter_errors(model, kwargs, call, message):
    with pytest.raises(ParameterError) as e:
        rec = SessionRecommender(model, **kwargs)
        call(rec)
    assert str(e.value) == message


def test_an_untrained_model_is_refused():
    with pytest.raises(GRU4RecError, match="not trained"):
        SessionRecommender(GRU4Rec(layers=[8]))
