"""experiments.outputs: the pipeline's result files (a killed job's temporary files cleared by the
rerun's write; markdown and LaTeX tables)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiments.outputs import atomic_output, latex_table, markdown_table, write_text_atomic


def test_markdown_table_and_atomic_text(tmp_path):
    df = pd.DataFrame({"split": ["test"], "events": [12], "days": [1.5]})
    assert markdown_table(df) == "| split | events | days |\n|---|---|---|\n| test | 12 | 1.5 |\n"
    assert "| 12.00 |" in markdown_table(df, lambda v, c: f"{v:.2f}" if c == "events" else str(v))
    write_text_atomic(tmp_path / "new" / "t.md", "x\n")
    assert (tmp_path / "new" / "t.md").read_text() == "x\n" and len(list((tmp_path / "new").iterdir())) == 1


def test_latex_table_is_booktabs_with_escaped_cells():
    df = pd.DataFrame({"Model": ["Item_KNN & co"], "Recall@20": [0.5], "vs POP (%)": ["12.5"]})
    tex = latex_table(
        df, lambda v, c: f"{v:.4f} ± 0.0100" if c == "Recall@20" else str(v), caption="50% of $", label="t"
    )
    lines = tex.splitlines()
    assert lines[:4] == [r"\begin{table}[t]", r"\centering", r"\caption{50\% of \$}", r"\label{t}"]
    assert lines[4:7] == [r"\begin{tabular}{lrr}", r"\toprule", r"Model & Recall@20 & vs POP (\%) \\"]
    assert lines[7:9] == [r"\midrule", r"Item\_KNN \& co & 0.5000 $\pm$ 0.0100 & 12.5 \\"]
    assert lines[9:] == [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def test_the_temporary_file_of_a_killed_writer_goes_with_the_next_write(tmp_path):
    target, other = tmp_path / "table.csv", tmp_path / "other.csv"
    writer = (
        "import sys, time\nfrom experiments.outputs import atomic_output\n"
        f"with atomic_output({str(target)!r}) as tmp:\n"
        "    open(tmp, 'w').write('half a ta')\n    print(tmp, flush=True)\n    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    left = Path(proc.stdout.readline().strip())  # the writer holds its temporary file open
    proc.kill()
    proc.wait()
    with atomic_output(other) as tmp:  # another output's write leaves it
        Path(tmp).write_text("b\n")
    assert left.exists() and not target.exists()
    with atomic_output(tmp_path / "table.csv.gz") as busy:  # a writer of another output, in progress
        with atomic_output(target) as tmp:
            Path(tmp).write_text("a\n")
        assert Path(busy).exists()
        Path(busy).write_bytes(b"")
    assert target.read_text() == "a\n" and not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv", "table.csv", "table.csv.gz"]
    live = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:  # a writer of the same output that still runs keeps its file (and fails no rename)
        held = Path(live.stdout.readline().strip())
        with atomic_output(target) as tmp:
            Path(tmp).write_text("c\n")
        assert held.exists() and target.read_text() == "c\n"
    finally:
        live.kill()
        live.wait()
