"""Rees46-scale preprocessing: wall time and peak memory on a generated raw file.

Writes 2019-Oct.csv and 2019-Nov.csv in the exact Rees46 raw format (all nine columns, ~94%
views, users returning over two months, Zipf item popularity), then runs
`python -m preprocessing rees46` on them in a child process and reports its wall time and peak
resident memory (getrusage of the child). The full Rees46 release is about 110M events; the
default generates 100M (about 13 GB of text, so point --dir at a disk with room).

    python benchmarks/preprocess_scale.py                      # 100M events
    python benchmarks/preprocess_scale.py --events 2000000     # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
OCT, DEC = np.datetime64("2019-10-01", "s").astype(np.int64), np.datetime64("2019-12-01", "s").astype(np.int64)
NOV = np.datetime64("2019-11-01", "s").astype(np.int64)
EVENT_TYPES = np.array(["view", "cart", "remove_from_cart", "purchase"])
EVENT_P = [0.94, 0.035, 0.015, 0.01]
CATEGORY_CODES = np.array(
    [
        "",
        "electronics.smartphone",
        "appliances.kitchen.washer",
        "computers.notebook",
        "apparel.shoes",
        "furniture.living_room.sofa",
    ]
)
BRANDS = np.array(["", "samsung", "apple", "xiaomi", "huawei", "lucente", "bosch"])


def generate(raw: Path, n_events: int, seed: int, mean_session=5.0) -> dict:
    """Day by day: sessions of returning users (geometric length, 5 s - 5 min apart) over a Zipf
    item popularity, each day's events sorted by time as in the real files."""
    rng = np.random.default_rng(seed)
    n_users = max(1000, n_events // 30)  # Rees46: about 30 events per user over the two months
    n_items = max(1000, n_events // 500)
    item_ids = np.sort(rng.choice(np.arange(1_000_000, 1_000_000 + 50 * n_items), n_items, replace=False))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    n_days = int((DEC - OCT) // 86400)
    per_day = np.full(n_days, n_events // n_days)
    per_day[: n_events - per_day.sum()] += 1
    writers, files, sizes = {}, [], {}
    options = pacsv.WriteOptions(quoting_style="none", include_header=False)  # the header is written unquoted
    try:
        for day in range(n_days):
            start = OCT + day * 86400
            n = int(per_day[day])
            lengths = 1 + rng.geometric(1.0 / mean_session, size=max(1, int(n / mean_session) + 8))
            lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
            lengths[-1] -= lengths.sum() - n
            lengths = lengths[lengths > 0]
            firsts = np.cumsum(lengths) - lengths
            gaps = rng.integers(5, 300, size=n)
            gaps[firsts] = 0
            offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[firsts], lengths)
            times = np.repeat(start + rng.integers(0, 86400, size=len(lengths)), lengths) + offsets
            users = np.repeat(rng.integers(0, n_users, size=len(lengths)) + 512_000_000, lengths)
            order = np.argsort(times, kind="stable")
            items = item_ids[rng.choice(n_items, size=n, p=popularity)]
            table = _table(rng, times, users, items, lengths, order, n)
            name = "2019-Oct.csv" if start < NOV else "2019-Nov.csv"
            if name not in writers:
                (raw / name).write_text(",".join(table.column_names) + "\n")
                files.append(pa.OSFile(str(raw / name), "ab"))
                writers[name] = pacsv.CSVWriter(files[-1], table.schema, write_options=options)
            writers[name].write_table(table)
            if (day + 1) % 10 == 0 or day + 1 == n_days:
                print(f"generating: day {day + 1}/{n_days}", file=sys.stderr, flush=True)
    finally:
        for w in writers.values():
            w.close()
        for f in files:
            f.close()
    for name in writers:
        sizes[name] = (raw / name).stat().st_size
    return sizes


def _table(rng, times, users, items, lengths, order, n) -> pa.Table:
    """One day of events in the nine Rees46 columns, in time order."""
    session_no = np.repeat(np.arange(len(lengths)), lengths)[order]
    t, it = times[order], items[order]
    return pa.table(
        {
            "event_time": pc.strftime(pa.array(t.astype("datetime64[s]")), format="%Y-%m-%d %H:%M:%S UTC"),
            "event_type": pa.array(EVENT_TYPES[rng.choice(4, size=n, p=EVENT_P)]),
            "product_id": pa.array(it),
            "category_id": pa.array(2053013555631882655 + it % 977),
            "category_code": pa.array(CATEGORY_CODES[it % len(CATEGORY_CODES)]),
            "brand": pa.array(BRANDS[it % len(BRANDS)]),
            "price": pa.array(np.round((it % 100_000) / 97.0, 2)),
            "user_id": pa.array(users[order]),
            "user_session": pc.binary_join_element_wise(
                pc.cast(pa.array(t), pa.string()), "-4e1a-9d2e-", pc.cast(pa.array(session_no), pa.string()), ""
            ),
        }
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000_000, help="raw events to generate (default 100M)")
    ap.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the generated raw files and the outputs")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    a = ap.parse_args(argv)
    work = a.dir or Path(tempfile.mkdtemp(prefix="preprocess_scale."))
    raw, out = work / "raw", work / "out"
    raw.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        sizes = generate(raw, a.events, a.seed)
        gen_s = time.perf_counter() - t0
        print(
            f"generated {a.events:,} events, {sum(sizes.values()) / 2**30:.2f} GiB of CSV in {gen_s:.1f} s", flush=True
        )
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "preprocessing", "rees46", "--raw", str(raw), "--out", str(out)], cwd=ROOT
        )
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"preprocessing failed with exit code {r.returncode}", file=sys.stderr)
            return r.returncode
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30  # ru_maxrss is KiB on Linux
        stats = _read_stats(out)
        result = {
            "raw_events": a.events,
            "raw_gib": round(sum(sizes.values()) / 2**30, 3),
            "preprocess_wall_s": round(wall, 1),
            "peak_rss_gib": round(peak_gib, 2),
            "raw_events_per_s": round(a.events / wall),
            "full_events": stats["full"]["events"],
            "train_full_events": stats["train_full"]["events"],
            "test_events": stats["test"]["events"],
        }
        print("RESULT " + json.dumps(result), flush=True)
        if a.json:
            a.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if not a.keep:
            shutil.rmtree(work if a.dir is None else raw, ignore_errors=True)
            if a.dir is not None:
                shutil.rmtree(out, ignore_errors=True)
    return 0


def _read_stats(out: Path) -> dict:
    import pandas as pd

    return pd.read_csv(out / "stats.tsv", sep="\t", index_col=0).T.to_dict()


if __name__ == "__main__":
    sys.exit(main())
