"""python -m preprocessing: progress lines and a summary, one-line errors with exit code 2."""

import subprocess
import sys

from preprocessing.__main__ import main


def test_progress_lines_and_summary(tmp_path, capsys):
    assert main(["synthetic", "--out", str(tmp_path / "o"), "--n-sessions", "1500", "--seed", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Read synthetic: ") and " events, " in out[0] and out[0].endswith(" items")
    assert any(line.startswith("Filtered sessions < 2 events and items < 5 events") for line in out)
    assert out[-1].startswith("Done: synthetic -> ") and (tmp_path / "o" / "stats.md").is_file()


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "events.csv").write_text("timestamp;visitorid;event;itemid\n1;2;view;3\n")
    assert main(["retailrocket", "--raw", str(tmp_path), "--out", str(tmp_path / "rr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("preprocessing: error: ") and "wrong separator" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rr").exists()
    assert (
        main(["custom", "--raw", str(tmp_path), "--out", str(tmp_path / "c"), "--config", str(tmp_path / "no.yaml")])
        == 2
    )
    assert "no.yaml: config file not found" in capsys.readouterr().err


def test_download_subcommand_lists_what_to_place(tmp_path, capsys):
    assert main(["download", "diginetica", "--raw", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("preprocessing: error: diginetica: 1 raw file(s) to place by hand")
    assert err[1].strip().startswith("train-item-views.csv -> ")


def test_module_entry_point(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "preprocessing", "coveo", "--raw", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("preprocessing: error: ") and "Traceback" not in r.stderr
    assert "release_10_23_2020.csv: file not found" in r.stderr
