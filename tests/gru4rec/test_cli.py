"""The gru4rec command end to end, and its error handling (one line, exit code 2, no traceback)."""
import re
import subprocess
import sys

import pandas as pd
import pytest

from gru4rec.cli import main
from tests.conftest import markov_sessions

FAST = "layers=24,n_epochs=1,batch_size=16,n_sample=16"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = markov_sessions(n_sessions=400, n_items=40, seed=1)
    df[df.SessionId < 350].to_csv(d / "train.tsv", sep="\t", index=False)
    df[df.SessionId >= 350].to_parquet(d / "test.parquet")
    return d


def run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_save_evaluate_recommend(files, capsys, tmp_path):
    model = tmp_path / "m.safetensors"
    code, out, err = run(["train", files / "train.tsv", "-ps", FAST, "-t", files / "test.parquet", "-m", 1, 5, 20,
                          "-s", model, "-d", "cpu"], capsys)
    assert code == 0, err
    assert re.search(r"^Epoch1 --> loss: [\d.]+ \([\d.]+s\) \[[\d.]+ mb/s \| \d+ e/s\]$", out, re.M)
    lines = re.findall(r"^Recall@(\d+): (\d\.\d{6}) MRR@\d+: (\d\.\d{6})$", out, re.M)
    assert [n for n, _, _ in lines] == ["1", "5", "20"]
    trained = {n: (r, m) for n, r, m in lines}
    code, out, err = run(["evaluate", model, "-t", files / "test.parquet", "-m", 20, 5, 1], capsys)
    assert code == 0, err
    again = {n: (r, m) for n, r, m in re.findall(r"^Recall@(\d+): (\S+) MRR@\d+: (\S+)$", out, re.M)}
    assert again == trained  # the saved model gives the same figures
    code, out, err = run(["recommend", model, "--items", 3, 7, 999999, "-k", 4], capsys)
    assert code == 0 and "skipped 1 input item" in err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows[0] == ["SessionId", "Rank", "ItemId", "Score"] and len(rows) == 5
    recs = tmp_path / "recs.tsv"
    code, out, err = run(["recommend", model, "--sessions", files / "test.parquet", "-k", 3, "-o", recs], capsys)
    assert code == 0 and out == ""
    got = pd.read_csv(recs, sep="\t")
    assert got.SessionId.nunique() == pd.read_parquet(files / "test.parquet").SessionId.nunique()
    assert set(got.Rank) == {1, 2, 3}


def test_reference_param_file(files, capsys, tmp_path):
    pf = tmp_path / "p.py"
    pf.write_text("from collections import OrderedDict\ngru4rec_params = OrderedDict([('loss', 'bpr-max'), "
                  "('elu_param', 0.5), ('layers', [16]), ('n_epochs', 1), ('batch_size', 16), ('n_sample', 8)])\n")
    code, out, err = run(["train", files / "train.tsv", "-pf", pf, "-d", "cpu"], capsys)
    assert code == 0, err


def test_python_dash_m_entry_point(files, tmp_path):
    r = subprocess.run([sys.executable, "-m", "gru4rec", "train", str(files / "train.tsv"), "-ps", FAST, "-d", "cpu",
                        "-t", str(files / "test.parquet")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Recall@20: " in r.stdout


@pytest.mark.parametrize("make,args,match", [
    (None, ["train", "{d}/missing.tsv", "-ps", FAST], "file not found"),
    (None, ["train", "{d}", "-ps", FAST], "is a directory"),
    ("empty", ["train", "{f}", "-ps", FAST], "empty"),
    ("nocol", ["train", "{f}", "-ps", FAST], "missing column"),
    ("badtime", ["train", "{f}", "-ps", FAST], "must be numeric"),
    ("nanid", ["train", "{f}", "-ps", FAST], "missing value"),
    ("ok", ["train", "{f}", "-ps", "layrs=10"], "unknown parameter 'layrs'"),
    ("ok", ["train", "{f}", "-ps", "batch_size=-1"], "batch_size"),
    ("ok", ["train", "{f}", "-ps", "loss=bpr-max,final_act=softmax"], "cannot be used with loss='bpr-max'"),
    ("ok", ["train", "{f}", "-ps", FAST, "-t", "{d}/nope.tsv"], "nope.tsv: file not found"),
    ("ok", ["train", "{f}", "-ps", FAST, "-s", "{d}/no/such/dir/m.safetensors"], "does not exist"),
    ("ok", ["evaluate", "{f}", "-t", "{f}"], "not a GRU4Rec model file"),
    ("ok", ["evaluate", "{d}/none.safetensors", "-t", "{f}"], "model file not found"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, make, args, match):
    f = tmp_path / "in.tsv"
    contents = {
        "empty": "",
        "nocol": "SessionId\tItem\tTime\n1\t2\t3\n",
        "badtime": "SessionId\tItemId\tTime\n1\t2\tnoon\n1\t3\t4\n",
        "nanid": "SessionId\tItemId\tTime\n1\t\t3\n1\t3\t4\n",
        "ok": "SessionId\tItemId\tTime\n1\t2\t3\n1\t3\t4\n2\t2\t5\n2\t3\t6\n",
    }
    if make:
        f.write_text(contents[make])
    argv = [a.format(d=tmp_path, f=f) for a in args]
    r = subprocess.run([sys.executable, "-m", "gru4rec", *argv, "-d", "cpu"], capture_output=True, text=True)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert err.startswith("gru4rec: error: ") and re.search(match, err), err


def test_parameter_string_and_file_are_exclusive(files, tmp_path):
    r = subprocess.run([sys.executable, "-m", "gru4rec", "train", str(files / "train.tsv"), "-ps", FAST, "-pf", "x.py"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
