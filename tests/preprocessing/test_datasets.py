"""Each public dataset from a small raw file in its exact raw format, with hand-checked splits.

One logical scenario is rendered into every raw format. Hand-checked expectations:
  s1 (1,2,3), s2 (1,1,2) -> dedup -> (1,2), s3 (2,3,1) with a gap of exactly 1 h (stays one session),
  s4 (3,9): item 9 has support 1 -> dropped -> s4 has one event -> dropped in the next round,
  s5 (1,2): same user as s1, 2 h later -> its own session,
  s6 (1,2,3) straddles t_split - D: train_full keeps (1,2), test does not get it; it starts after
          t_split - 2D, so train_valid gets its cut (1,2),
  s7 (2,3,1): starts in the last D -> test, s8 (3,1,2): starts in [t_split - 2D, t_split - D) -> train_valid,
  u9: view 1, a cart event 50 min later, view 2 50 min after that. Sessions built on all events
      (RetailRocket, Coveo) keep (1,2) as one session; built on views only (Rees46) they split into
      two length-1 sessions that are dropped.
"""

import shutil
from collections import Counter
from datetime import datetime, timezone

import pandas as pd
import pytest

import preprocessing
from preprocessing.errors import PreprocessingError

H = 3600


def scenario(t_split, day, user_based, last_before_split=0):
    """(session or user, item, time in s, event) rows around the split point t_split (s); the last
    event is `last_before_split` seconds before it (0 where t_split is the last event's time)."""
    D = day
    early = t_split - 3 * D
    rows = []

    def sess(name, items, start, gaps=None, user=None):
        t = start
        for k, item in enumerate(items):
            if k:
                t += gaps[k - 1] if gaps else 600
            rows.append((user if user_based else name, item, t, "view"))

    sess("s1", [1, 2, 3], early, user="u1")
    sess("s2", [1, 1, 2], early + 5 * H, user="u2")
    sess("s3", [2, 3, 1], early + 10 * H, gaps=[H, 600], user="u3")
    sess("s4", [3, 9], early + 15 * H, user="u4")
    sess("s5", [1, 2], early + 1200 + 2 * H + 1, user="u1")  # s1 ends at early+1200
    b1 = t_split - D
    sess("s6", [1, 2, 3], b1 - 3000, gaps=[2400, 3000], user="u6")  # straddles t_split - D
    sess("s8", [3, 1, 2], t_split - 2 * D + 2 * H, user="u8")
    sess("s7", [2, 3, 1], t_split - 1200 - last_before_split, user="u7")
    if user_based:
        t = early + 20 * H
        rows += [("u9", 1, t, "view"), ("u9", 5, t + 3000, "cart"), ("u9", 2, t + 6000, "view")]
    return rows


def item_seqs(df):
    df = df.sort_values(["SessionId", "Time"], kind="stable")
    return Counter(tuple(g.ItemId.tolist()) for _, g in df.groupby("SessionId"))


def expected(bridge):
    extra = Counter({(1, 2): 1}) if bridge else Counter()
    train_tr = Counter({(1, 2, 3): 1, (1, 2): 2, (2, 3, 1): 1}) + extra
    valid = Counter({(1, 2): 1, (3, 1, 2): 1})
    return {"test": Counter({(2, 3, 1): 1}), "train_full": train_tr + valid, "train_tr": train_tr, "train_valid": valid}


def check(out, bridge):
    exp = expected(bridge)
    for split, want in exp.items():
        got = item_seqs(pd.read_parquet(out / f"{split}.parquet"))
        assert got == want, (split, got, want)
    stats = pd.read_csv(out / "stats.tsv", sep="\t", index_col=0)
    assert stats.loc["test", "events"] == 3 and stats.loc["full", "items"] == 3
    assert (out / "stats.md").read_text().startswith("| split |")


def iso(t, fmt):
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime(fmt)


def test_yoochoose(tmp_path):
    t_end = 1_400_000_000
    rows = scenario(t_end, 86400, False)
    ids = {f"s{i}": 100 + i for i in range(1, 9)}
    lines = [f"{ids[s]},{iso(t, '%Y-%m-%dT%H:%M:%S')}.123Z,{item},0" for s, item, t, _ in rows]
    (tmp_path / "yoochoose-clicks.dat").write_text("\n".join(lines[:-3]) + "\n")
    (tmp_path / "yoochoose-test.dat").write_text("\n".join(lines[-3:]) + "\n")  # s7 is in the test file
    preprocessing.preprocess("yoochoose", tmp_path, tmp_path / "out", quiet=True)
    check(tmp_path / "out", bridge=False)
    assert set(pd.read_parquet(tmp_path / "out" / "test.parquet").SessionId) == {107}  # ids kept as in the source


def test_diginetica_time_is_session_start_day_plus_timeframe(tmp_path):
    t_end = 1_460_000_000
    rows = scenario(t_end, 7 * 86400, False)
    starts = {}
    for s, _, t, _ in rows:
        starts.setdefault(s, t)
    out = ["sessionId;userId;itemId;timeframe;eventdate"]
    for s, item, t, _ in rows:
        midnight = starts[s] - starts[s] % 86400
        out.append(f"{s[1:]};NA;{item};{(t - midnight) * 1000};{iso(starts[s], '%Y-%m-%d')}")
    (tmp_path / "train-item-views.csv").write_text("\n".join(out) + "\n")
    preprocessing.preprocess("diginetica", tmp_path, tmp_path / "out", quiet=True)
    check(tmp_path / "out", bridge=False)
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    assert test.Time.max() == t_end * 1000  # milliseconds


def test_retailrocket_sessions_on_all_events_then_views(tmp_path):
    t_split = 1442545200  # the fixed split point (ms in the file)
    rows = scenario(t_split, 7 * 86400, True, last_before_split=600)
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    users = {}
    for u, item, t, ev in rows:
        lines.append(
            f"{t * 1000},{users.setdefault(u, 1000 + len(users))},{ev if ev == 'view' else 'addtocart'},{item},"
        )
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    preprocessing.preprocess("retailrocket", tmp_path, tmp_path / "out", quiet=True)
    check(tmp_path / "out", bridge=True)


def test_coveo_sessions_on_all_events_then_detail_views(tmp_path):
    t_end = 1_590_000_000
    rows = scenario(t_end, 86400, True)
    lines = ["session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url"]
    for u, item, t, ev in rows:
        if ev == "view":
            lines.append(f"h{u},event_product,detail,sku{item},{t * 1000},url")
        else:
            lines.append(f"h{u},pageview,,,{t * 1000},url")  # no product: only bridges the gap
    (tmp_path / "release_10_23_2020.csv").write_text("\n".join(lines) + "\n")
    preprocessing.preprocess("coveo", tmp_path, tmp_path / "out", quiet=True)
    exp = expected(True)
    got = item_seqs(pd.read_parquet(tmp_path / "out" / "train_tr.parquet"))
    assert got == Counter({tuple(f"sku{i}" for i in k): v for k, v in exp["train_tr"].items()})


def test_rees46_views_first_then_sessions(tmp_path):
    t_split = 1575158400
    rows = scenario(t_split, 86400, True, last_before_split=600)
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    users = {}
    lines = [
        f"{iso(t, '%Y-%m-%d %H:%M:%S')} UTC,{ev},{item},1,,,1.0,{users.setdefault(u, 500 + len(users))},x"
        for u, item, t, ev in rows
    ]
    (tmp_path / "2019-Oct.csv").write_text(header + "\n" + "\n".join(lines[:10]) + "\n")
    (tmp_path / "2019-Nov.csv").write_text(header + "\n" + "\n".join(lines[10:]) + "\n")
    preprocessing.preprocess("rees46", tmp_path, tmp_path / "out", quiet=True)
    check(tmp_path / "out", bridge=False)  # u9's views are 100 min apart: two length-1 sessions, dropped


def test_rsc15_keeps_its_own_recipe(tmp_path):
    t_end = 1_400_000_000
    rows = [
        (1, 1, t_end - 5 * 86400),
        (1, 1, t_end - 5 * 86400 + 60),
        (1, 2, t_end - 5 * 86400 + 120),  # no dedup
        (2, 7, t_end - 4 * 86400),
    ]  # length 1: dropped
    rows += [(10 + k, 1 + k % 2, t_end - 3 * 86400 + k * 100) for k in range(10)]
    rows += [(10 + k, 2 - k % 2, t_end - 3 * 86400 + k * 100 + 50) for k in range(10)]
    rows += [(50, 1, t_end - 3600), (50, 2, t_end - 1800), (50, 8, t_end - 900)]  # test; item 8 unknown... dropped
    rows += [(60, 8, t_end - 600), (60, 1, t_end)]  # test; left with 1 event: dropped
    rows += [(61, 8, t_end - 100), (62, 8, t_end - 90), (63, 8, t_end - 80), (64, 8, t_end - 70)]
    rows += [(61, 1, t_end - 99), (62, 2, t_end - 89), (63, 1, t_end - 79), (64, 2, t_end - 69)]
    lines = [f"{s},{iso(t, '%Y-%m-%dT%H:%M:%S')}.000Z,{i},0" for s, i, t in rows]
    (tmp_path / "yoochoose-clicks.dat").write_text("\n".join(lines) + "\n")
    preprocessing.preprocess("rsc15", tmp_path, tmp_path / "out", quiet=True)
    train = pd.read_parquet(tmp_path / "out" / "train_full.parquet")
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    assert train[train.SessionId == 1].ItemId.tolist() == [1, 1, 2]
    assert 2 not in set(train.SessionId)
    assert 8 not in set(train.ItemId)  # item 8 has support 5 but every session with it ends in the last day
    assert set(test.SessionId) == {50}
    assert test.ItemId.tolist() == [1, 2]


def test_diginetica_real_sample_end_to_end(tmp_path, data_dir):
    raw = tmp_path / "raw"  # a copy: preprocessing records the raw file's provenance beside it
    shutil.copytree(data_dir / "diginetica-sample", raw)
    stats = preprocessing.preprocess("diginetica", raw, tmp_path / "out", quiet=True)
    full = pd.read_parquet(tmp_path / "out" / "full.parquet")
    # the reference recipe repeats the filters until stable: every item >= 5 events, every session >= 2
    assert full.groupby("ItemId").size().min() >= 5 and full.groupby("SessionId").size().min() >= 2
    assert stats["full"]["events"] == len(full) == 779
    train = pd.read_parquet(tmp_path / "out" / "train_full.parquet")
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    boundary = full.Time.max() - 7 * 86400 * 1000
    assert train.Time.max() < boundary <= test.groupby("SessionId").Time.min().min()
    assert stats["train_full"]["events"] + stats["test"]["events"] <= stats["full"]["events"]


@pytest.mark.parametrize(
    "content,match",
    [
        ("", "empty"),
        ("timestamp,visitorid,event\n1,2,view\n", r"missing column\(s\) itemid"),
        ("timestamp;visitorid;event;itemid\n1;2;view;3\n", "wrong separator"),
        ("timestamp,visitorid,event,itemid,transactionid\n", "no events"),
        (
            "timestamp,visitorid,event,itemid,transactionid\nnoon,1,view,3,\n",
            "column timestamp: expected an integer, found 'noon'",
        ),
        ("timestamp,visitorid,event,itemid\n1,2,view\n", "cannot parse as CSV .*Expected 4 columns"),
        ("timestamp,visitorid,event,itemid,transactionid\n1,1,addtocart,3,\n", "no events left"),
        (
            "timestamp,visitorid,event,itemid,transactionid\n1,1,view,3,\n2,1,view,4,\n",
            "no events left after filtering",
        ),
    ],
)
def test_bad_raw_input_is_a_one_line_error_and_writes_nothing(tmp_path, content, match):
    (tmp_path / "events.csv").write_text(content)
    with pytest.raises(PreprocessingError, match=match) as e:
        preprocessing.preprocess("retailrocket", tmp_path, tmp_path / "out", quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and ("events.csv" in msg or "no events left" in msg)
    assert not (tmp_path / "out").exists()


def test_unparsable_timestamp(tmp_path):
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    (tmp_path / "2019-Oct.csv").write_text(
        header + "\n2019-10-01 00:00:00 UTC,view,1,1,,,1,1,x\nyesterday,view,1,1,,,1,1,x\n"
    )
    (tmp_path / "2019-Nov.csv").write_text(header + "\n")
    with pytest.raises(
        PreprocessingError, match=r"2019-Oct.csv: column event_time: cannot parse time 'yesterday' at data row 2"
    ):
        preprocessing.preprocess("rees46", tmp_path, tmp_path / "out", quiet=True)


def test_yoochoose_floors_to_whole_seconds_and_rsc15_keeps_the_fraction(tmp_path):
    rows = [(1, 1, "2014-04-01T10:00:00.900Z"), (1, 2, "2014-04-01T10:00:00.100Z"), (1, 1, "2014-04-01T10:00:01.500Z")]
    rows += [
        (s, 1 + (s + k) % 2, f"2014-04-0{d}T1{k}:00:00.000Z")
        for s, d in ((2, 1), (3, 2), (4, 3), (5, 4))
        for k in range(3)
    ]
    lines = [f"{s},{t},{i},0" for s, i, t in rows]
    (tmp_path / "yoochoose-clicks.dat").write_text("\n".join(lines) + "\n")
    (tmp_path / "yoochoose-test.dat").write_text("")
    with pytest.raises(PreprocessingError, match="yoochoose-test.dat: the file is empty"):
        preprocessing.preprocess("yoochoose", tmp_path, tmp_path / "out", quiet=True)
    (tmp_path / "yoochoose-test.dat").write_text(lines[-1] + "\n")
    preprocessing.preprocess("yoochoose", tmp_path, tmp_path / "out", quiet=True)
    s1 = pd.read_parquet(tmp_path / "out" / "full.parquet").query("SessionId == 1")
    # whole seconds: the first two clicks tie at 10:00:00 and are ordered by item, so the repeat of
    # item 1 at 10:00:01 is not consecutive and survives (the reference recipe does the same)
    assert s1.ItemId.tolist() == [1, 2, 1] and s1.Time.tolist() == [1396346400, 1396346400, 1396346401]
    preprocessing.preprocess("rsc15", tmp_path, tmp_path / "rsc", quiet=True)
    s1 = pd.read_parquet(tmp_path / "rsc" / "full.parquet").query("SessionId == 1")
    assert s1.Time.tolist() == [1396346400.1, 1396346400.9, 1396346401.5] and s1.ItemId.tolist() == [2, 1, 1]


def test_filter_repeats_until_stable():
    """Item 9 (4 events) goes in round 1, which leaves session 5 and sessions 10-12 with one event;
    they go in round 2, which takes item 8 from 5 events to 4; it goes too, which leaves sessions
    6 and 20-22 with one event; they go in round 3. Items 1-3 keep exactly 5 events each."""
    from preprocessing import common

    rows = [(s, i) for s in range(5) for i in (1, 2, 3)]
    rows += [(5, 9), (5, 8)] + [(s, i) for s in (10, 11, 12) for i in (9, 1)]
    rows += [(6, 8), (6, 1)] + [(s, i) for s in (20, 21, 22) for i in (8, 2)]
    df = pd.DataFrame(rows, columns=["SessionId", "ItemId"]).assign(Time=range(len(rows)))
    one_round = common.drop_rare_items(common.drop_short_sessions(df, 2), 5)
    assert {5, 6, 20}.issubset(set(one_round.SessionId))
    out = common.filter_until_stable(df, 2, 5, quiet=True)
    assert sorted(set(out.SessionId)) == [0, 1, 2, 3, 4] and len(out) == 15
    assert out.groupby("ItemId").size().to_dict() == {1: 5, 2: 5, 3: 5}


def test_diginetica_wrong_separator(tmp_path):
    (tmp_path / "train-item-views.csv").write_text("sessionId,userId,itemId,timeframe,eventdate\n1,NA,2,3,2016-01-01\n")
    with pytest.raises(
        PreprocessingError,
        match=r"train-item-views.csv: missing column\(s\) sessionId / session_id, .*"
        r"wrong separator\? expected ';'",
    ):
        preprocessing.preprocess("diginetica", tmp_path, tmp_path / "out", quiet=True)


def test_events_without_an_item_are_dropped_and_counted_and_ids_stay_integers(tmp_path, capsys):
    rows = scenario(1442545200, 7 * 86400, True, last_before_split=600)
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    users = {}
    for u, item, t, ev in rows:
        lines.append(f"{t * 1000},{users.setdefault(u, len(users))},{ev if ev == 'view' else 'addtocart'},{item},")
    lines.append(f"{rows[0][2] * 1000 + 1},{users[rows[0][0]]},view,,")  # a view without an item
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    preprocessing.preprocess("retailrocket", tmp_path, tmp_path / "out")
    assert "Dropped 1 event(s) without an item id" in capsys.readouterr().out
    check(tmp_path / "out", bridge=True)
    assert pd.read_parquet(tmp_path / "out" / "full.parquet").ItemId.dtype == "int64"
