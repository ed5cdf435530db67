"""The model library stands alone: `import gru4rec` needs torch, numpy, pandas and pyarrow, never
the experiment pipeline (Optuna, MLflow, plots, Snakemake) or the preprocessing package."""

import ast
import subprocess
import sys
from pathlib import Path

import gru4rec

PIPELINE = ("optuna", "mlflow", "matplotlib", "snakemake", "preprocessing", "experiments")
LIBRARY = Path(gru4rec.__file__).parent


def test_no_module_of_the_library_imports_the_pipeline():
    """Also the imports inside functions, which importing the package would not reveal."""
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in PIPELINE]
    assert not found


def test_importing_the_library_loads_no_pipeline_module():
    code = f"import sys, gru4rec, gru4rec.cli\nprint([m for m in {PIPELINE!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_version_has_one_home():
    """pyproject.toml reads the version from gru4rec/__init__.py instead of repeating it."""
    pyproject = (LIBRARY.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "gru4rec.__version__" }' in pyproject
    assert "\nversion =" not in pyproject.split("[project]")[1].split("\n[")[0]


def test_the_parameters_and_the_baselines_specs_load_without_torch():
    """The workflow reads them when it parses its DAG; torch comes with the first model."""
    code = (
        "import sys, gru4rec.params, gru4rec.baselines.specs, gru4rec.baselines as b\n"
        "before = 'torch' in sys.modules\n"
        "b.make_baseline('pop')\n"
        "print(before, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_the_lazy_api_is_the_eager_one():
    import gru4rec.recommend  # noqa: F401 (the submodule must not hide the function of its name)
    from gru4rec.core import GRU4Rec
    from gru4rec.recommend import recommend

    assert gru4rec.GRU4Rec is GRU4Rec and gru4rec.recommend is recommend
    assert set(gru4rec.__all__) <= set(dir(gru4rec))
