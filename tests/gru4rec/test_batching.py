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
    offsets = np.array([0, 5, 7, 9, 12])  # lengths 5, 2, 2, 3
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


def test_no_hidden_state_action_before_the_first_step():
    # s0 has one event and gives no pair; fewer sessions (3) than slots (4): step 0 already has
    # fewer rows than there are slots, and its state must be created with that many rows
    s = build_schedule(np.array([0, 1, 4, 6]), np.arange(3), batch_size=4)
    assert rows(s) == [[1, 4], [2]]
    assert {t: list(k) for t, k in s.shrink.items()} == {1: [0]}


def reference_iterator(lengths, order, batch_size, min_width):
    """A step-by-step simulation of the references' session-parallel iterator, one slot at a time.

    Rounds: every slot runs until the shortest remaining session ends; then all finished slots
    (in slot order) take the next sessions; a slot that takes a one-event session finishes again
    in the next round (with no step in between). Slots left without a session are dropped, keeping
    slot order, and the pass ends when fewer than `min_width` slots are left. Generalised to fewer
    sessions than slots (the extra slots start empty) and checked before the first round too.
    Returns per step (slot ids of the rows, input events, new-session flags).
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = len(order)
    slots = [k for k in range(batch_size) if k < n]
    session = {k: k for k in slots}  # slot -> position in `order`
    pos = {k: offsets[order[k]] for k in slots}  # slot -> current event
    new = {k: True for k in slots}
    next_session, steps = len(slots), []
    while len(slots) >= max(min_width, 1):
        end = {k: offsets[order[session[k]] + 1] for k in slots}
        minlen = min(end[k] - pos[k] for k in slots)
        for i in range(minlen - 1):
            steps.append((list(slots), [pos[k] + i for k in slots], [new[k] and i == 0 for k in slots]))
        if minlen > 1:
            new = {k: False for k in slots}
        for k in slots:
            pos[k] += minlen - 1
        finished = [k for k in slots if end[k] - pos[k] <= 1]
        for k in finished:  # in slot order
            if next_session < n:
                session[k], pos[k], new[k] = next_session, offsets[order[next_session]], True
            else:
                session[k] = None
            next_session += 1
        slots = [k for k in slots if session[k] is not None]
    return steps


def check_against_reference(lengths, order, batch_size, min_width):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    s = build_schedule(offsets, order, batch_size, min_width)
    ref = reference_iterator(lengths, order, batch_size, min_width)
    assert s.n_steps == len(ref)
    assert 0 not in s.shrink  # the state is created with the first step's rows
    for t, (slots, events, new) in enumerate(ref):
        w = s.width[t]
        assert list(s.inputs[t, :w]) == events, t
        assert list(s.starts[t, :w]) == new, t
        if t > 0:
            prev = ref[t - 1][0]
            carried = [prev[k] for k in s.shrink[t]] if t in s.shrink else prev
            assert carried == slots, t
    assert s.n_events == sum(len(e) for _, e, _ in ref)


def test_schedule_equals_the_reference_iterator_on_random_cases():
    rng = np.random.default_rng(12345)
    for case in range(3000):
        n = int(rng.integers(1, 25))
        lengths = rng.integers(1, 6, size=n)
        if case % 3 == 0:
            lengths[rng.random(n) < 0.5] = 1  # many one-event sessions
        order = rng.permutation(n) if case % 2 else np.arange(n)
        batch_size = int(rng.integers(1, 12))
        check_against_reference(lengths, order, batch_size, min_width=int(rng.integers(1, 3)))
