"""The locked environment (requirements/lock.py): the check catches every drift, and the files that
install the project (Makefile, conda files) agree with the lock."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("lock", ROOT / "requirements" / "lock.py")
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def test_the_check_reports_every_kind_of_drift():
    pins = {"pyarrow": "24.0.0", "pandas": "3.1.1", "torch": "2.13.0", "numpy": "2.4.6"}
    have = {"pyarrow": "25.0.1", "pandas": "3.1.1", "torch": "2.13.0+cpu", "extra-pkg": "1.0", "nvidia-cublas": "13"}
    assert lock.differences(pins, have) == [
        "numpy: locked 2.4.6, not installed",
        "pyarrow: locked 24.0.0, installed 25.0.1",
        "extra-pkg: installed 1.0, not in the lock",
    ]  # torch's local build label and the CUDA build's own packages are no drift
    assert lock.differences(pins, have, strict_extras=False)[-1] == "pyarrow: locked 24.0.0, installed 25.0.1"
    assert lock.differences(pins, dict(pins)) == []


def test_a_cuda_build_is_told_by_its_runtime_packages():
    have = {"torch": "2.13.0", "nvidia-cublas-cu12": "12.8", "triton": "3.5", "numpy": "2.4.6"}
    assert lock.cuda_packages(have) == ["nvidia-cublas-cu12", "triton"]
    assert lock.cuda_packages({"torch": "2.13.0+cpu", "numpy": "2.4.6"}) == []


def test_names_are_normalized_and_the_lock_is_parsed_strictly(tmp_path):
    assert lock.normalize("ConfigArgParse") == "configargparse" and lock.normalize("typing_Extensions") == (
        "typing-extensions"
    )
    path = tmp_path / "lock.txt"
    path.write_text("# python: CPython 3.11\nFoo_Bar==1.2  # why\n\ntorch==2.13.0\n")
    assert lock.read_lock(path) == ({"foo-bar": "1.2", "torch": "2.13.0"}, "CPython 3.11")
    path.write_text("numpy>=2\n")
    with pytest.raises(SystemExit, match=r"lock.txt:1: expected 'name==version', got 'numpy>=2'"):
        lock.read_lock(path)


def test_the_running_environment_is_the_lock():
    """`make test` runs in the locked .venv: what pytest imports is what the lock says (the check
    `make install` and `make test` run; `make test-latest` is the one place it may differ)."""
    if Path(sys.prefix).name != ".venv":
        pytest.skip(f"not the project's locked .venv ({sys.prefix})")
    run = subprocess.run(
        [sys.executable, str(ROOT / "requirements" / "lock.py"), "check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_the_lock_pins_every_dependency_of_the_project():
    pins, made_with = lock.read_lock()
    assert made_with and made_with.startswith("CPython 3.")
    for name in ["torch", "numpy", "pandas", "pyarrow", "optuna", "mlflow", "snakemake", "pytest", "ruff"]:
        assert name in pins, name
    # the dependencies' dependencies too: a clean resolve of .[test] holds well over a hundred packages
    assert len(pins) > 100 and {"pip", "setuptools", "sqlalchemy", "alembic"} <= set(pins)
    # the Makefile installs the locked torch release, its CPU build from PyTorch's CPU index, and
    # checks the build wherever it installs torch itself
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^TORCH \?= torch=={re.escape(pins['torch'])}$", makefile, re.M)
    assert re.search(r"^TORCH_INDEX \?= https://download.pytorch.org/whl/cpu$", makefile, re.M)
    # no install of torch without the index ("$(TORCH)" is in PIP_TORCH and test-latest's pin only)
    assert makefile.count('"$(TORCH)"') == 2 and '"$(TORCH)" >' in makefile
    assert (
        len(re.findall(r"call PIP_TORCH,", makefile)) == 3 and "--no-deps --extra-index-url $(TORCH_INDEX)" in makefile
    )
    assert makefile.count("requirements/lock.py cpu-torch") == 3
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"ruff=={pins["ruff"]}"' in pyproject and f'"snakefmt=={pins["snakefmt"]}"' in pyproject


@pytest.mark.parametrize("path", lock.ENV_FILES, ids=lambda p: p.name)
def test_the_conda_files_install_the_lock(path):
    text = path.read_text()
    pins, made_with = lock.read_lock()
    assert lock.with_pins(text, pins, path) == text, f"{path.name} is not the lock's: run make lock"
    python = made_with.split()[1]
    assert re.search(rf"- python ?={re.escape(python)}$", text, re.M)


def test_with_pins_replaces_only_the_marked_block(tmp_path):
    text = f"a: 1\n  - pip:\n    - keep-me\n    {lock.BEGIN}\n    - old==1\n    {lock.END}\n    - -e .\n"
    out = lock.with_pins(text, {"new": "2", "abc": "3"}, tmp_path / "env.yml")
    assert (
        out
        == f"a: 1\n  - pip:\n    - keep-me\n    {lock.BEGIN}\n    - abc==3\n    - new==2\n    {lock.END}\n    - -e .\n"
    )
    with pytest.raises(SystemExit, match="env.yml: expected one"):
        lock.with_pins("a: 1\n", {}, tmp_path / "env.yml")
