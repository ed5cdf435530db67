"""The session-parallel schedule on hand-made sessions: resets, replacement, shrinking, end of epoch."""
import numpy as np

from gru4rec.batching import build_schedule

# sessions: s0 = e0..e2 (3 events), s1 = e3 (1 event), s2 = e4..e7 (4), s3 = e8..e9 (2), s4 = e10..e11 (2)
OFFSETS = np.array([0, 3, 4, 8, 10, 12])


def rows(s):
    return [list(r[:w]) for r, w in zip(s.inputs, s.width)]


def test_schedule_by_hand():
    s = build_schedule(OFFSETS, np.arange(5), batch_size=2)
    # slot 0: s0 (e0, e1), then s3 (e8), then s4 (e10); slot 1: s1 gives no pair and is passed over,
    # s2 (e4, e5, e6); at step 3 no session is left for slot 1, so the batch shrinks to one slot.
    assert rows(s) == [[0, 4], [1, 5], [8, 6], [10]]
    assert [list(r[:w]) for r, w in zip(s.starts, s.width)] == [[True, True], [False, False], [True, False], [True]]
    assert list(s.width) == [2, 2, 2, 1]
    assert {t: list(k) for t, k in s.shrink.items()} == {3: [0]}
    assert s.n_events == 7  # every event but the last of each session, length-1 sessions give none


def test_without_samples_epoch_ends_below_two_slots():
    s = build_schedule(OFFSETS, np.arange(5), batch_size=2, min_width=2)
    assert rows(s) == [[0, 4], [1, 5], [8, 6]]


def test_shrink_keeps_slot_order_and_drops_the_finished_slots():
    offsets = np.array([0, 5, 7, 9, 12])       # lengths 5, 2, 2, 3
    s = build_schedule(offsets, np.arange(4), batch_size=3)
    # t0: s0,s1,s2; t1: s0 (e1), s3 replaces s1 in slot 1 (e9), slot 2 has no session left
    assert rows(s) == [[0, 5, 7], [1, 9], [2, 10], [3]]
    assert {t: list(k) for t, k in s.shrink.items()} == {1: [0, 1], 3: [0]}


def test_processing_order_is_respected():
    s = build_schedule(OFFSETS, np.array([4, 3, 2, 1, 0]), batch_size=1)
    assert [r[0] for r in rows(s)] == [10, 8, 4, 5, 6, 0, 1]
    assert list(s.starts[:, 0]) == [True, True, True, False, False, True, False]


def test_every_pair_appears_exactly_once_on_random_sessions():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=300)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    s = build_schedule(offsets, rng.permutation(300), batch_size=16)
    fed = np.concatenate([r[:w] for r, w in zip(s.inputs, s.width)])
    last_events = set(offsets[1:] - 1)
    expected = [e for e in range(offsets[-1]) if e not in last_events]
    assert sorted(fed.tolist()) == expected
    assert np.all(np.diff(s.width) <= 0) and s.width[0] == 16
