"""The locked environment: write the lock from an installed environment, check an environment against it.

    python requirements/lock.py freeze > requirements/lock.txt   # after a clean install (make lock)
    python requirements/lock.py check                            # the running environment equals the lock
    python requirements/lock.py envs                             # write the conda files' pip pins from the lock
    python requirements/lock.py cpu-torch                        # the torch just installed is a CPU build

`requirements/lock.txt` is a pip constraints file: every distribution of a clean install of
`.[test]` on CPython 3.11 / Linux x86_64, transitive ones included, pinned with `==`. `make install`
installs with `-c requirements/lock.txt`, so a fresh machine gets what CI tested, whatever the
registry serves today. torch is pinned without its local label (`2.13.0`, not `2.13.0+cpu`) so that
the CPU and the CUDA builds of one release both satisfy it; the CUDA build's own runtime packages
(nvidia-*, triton) are not in a CPU resolve and the check lets them be. Which build `make install`
gets is checked where it installs torch itself (`cpu-torch`); a torch that was there before (a CUDA
build a GPU user installed on purpose, README "GPU") is kept.

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "lock.txt"
ROOT = HERE.parent
PROJECT = "gru4rec-pipeline"
# what a CUDA build of torch brings besides the packages of the CPU resolve
CUDA_EXTRAS = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")
# the conda files whose pip section is the lock (between these markers)
ENV_FILES = [ROOT / "environment.yml", ROOT / "workflow" / "envs" / "pipeline.yaml"]
BEGIN, END = "# BEGIN lock (make lock writes this list)", "# END lock"


def normalize(name: str) -> str:
    """PEP 503 name: 'Foo_Bar' and 'foo-bar' are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0' (a `==2.13.0` constraint admits every local build of the release)."""
    return version.split("+", 1)[0]


def python_tag() -> str:
    return f"{platform.python_implementation()} {sys.version_info.major}.{sys.version_info.minor}"


def installed() -> dict[str, str]:
    """{normalized name: version} of the running environment, the project itself left out."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) != PROJECT:
            out[normalize(name)] = dist.version
    return out


def read_lock(path: Path = LOCK) -> tuple[dict[str, str], str | None]:
    """({name: version}, the Python the lock was made with) from a lock file."""
    pins, made_with = {}, None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if raw.startswith("# python:"):
            made_with = raw.partition(":")[2].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise SystemExit(f"{path}:{n}: expected 'name==version', got {raw!r}")
        pins[normalize(name.strip())] = version.strip()
    return pins, made_with


def freeze() -> str:
    """The lock file of the running environment."""
    lines = [
        "# The locked environment: every package of a clean install of .[test], as pip constraints.",
        "# Regenerate with `make lock` (then run `make test`); never edit by hand.",
        f"# python: {python_tag()}",
        f"# platform: {platform.system()} {platform.machine()}",
    ]
    pins = {name: public(version) for name, version in installed().items() if not CUDA_EXTRAS.match(name)}
    lines += [f"{name}=={pins[name]}" for name in sorted(pins)]
    return "\n".join(lines) + "\n"


def differences(pins: dict[str, str], have: dict[str, str], strict_extras: bool = True) -> list[str]:
    """What differs between the lock's pins and an environment's versions, one line each."""
    out = []
    for name, version in sorted(pins.items()):
        if name not in have:
            out.append(f"{name}: locked {version}, not installed")
        elif public(have[name]) != version:
            out.append(f"{name}: locked {version}, installed {have[name]}")
    if strict_extras:
        for name in sorted(set(have) - set(pins)):
            if not CUDA_EXTRAS.match(name):
                out.append(f"{name}: installed {have[name]}, not in the lock")
    return out


def check() -> int:
    pins, made_with = read_lock()
    # another Python resolves a few packages differently (backports below 3.11, say): there the
    # packages outside the lock are reported, not failed
    same_python = made_with in (None, python_tag())
    have = installed()
    diffs = differences(pins, have, strict_extras=same_python)
    if not same_python:
        print(f"note: the lock was made with {made_with}; this is {python_tag()}", file=sys.stderr)
        for line in differences(pins, have)[len(diffs) :]:
            print(f"note: {line}", file=sys.stderr)
    if diffs:
        print(f"the environment differs from {LOCK.relative_to(ROOT)} ({len(diffs)}):", file=sys.stderr)
        for line in diffs:
            print(f"  {line}", file=sys.stderr)
        print("reinstall it (make distclean install), or after changing pyproject.toml: make lock", file=sys.stderr)
        return 1
    print(f"environment matches {LOCK.relative_to(ROOT)}: {len(pins)} packages")
    return 0


def cuda_packages(have: dict[str, str]) -> list[str]:
    """The CUDA runtime packages among the installed ones: what a CUDA build of torch pulls in."""
    return sorted(name for name in have if CUDA_EXTRAS.match(name))


def cpu_torch() -> int:
    """A torch that `make install` installed must be the CPU build: one line and exit 1 otherwise."""
    import torch  # the only command that needs it: run after torch is installed

    extras = cuda_packages(installed())
    if torch.version.cuda is None and not extras:
        print(f"torch {torch.__version__}: CPU build")
        return 0
    what = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"with {', '.join(extras[:3])}"
    print(
        f"error: the installed torch {torch.__version__} is a CUDA build ({what}), expected the CPU build: "
        "check that pip reaches TORCH_INDEX (https://download.pytorch.org/whl/cpu), or install the CPU "
        "wheel first (README, 'GPU', for a CUDA install on purpose)",
        file=sys.stderr,
    )
    return 1


def env_block(pins: dict[str, str], indent: str) -> list[str]:
    return (
        [f"{indent}{BEGIN}"]
        + [f"{indent}- {name}=={version}" for name, version in sorted(pins.items())]
        + [f"{indent}{END}"]
    )


def with_pins(text: str, pins: dict[str, str], path: Path) -> str:
    """A conda file's text with the list between the lock markers replaced by the lock's pins."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(f"{path}: expected one '{BEGIN}' ... '{END}' block in its pip section")
    indent = lines[starts[0]][: len(lines[starts[0]]) - len(lines[starts[0]].lstrip())]
    return "\n".join(lines[: starts[0]] + env_block(pins, indent) + lines[ends[0] + 1 :]) + "\n"


def envs() -> int:
    pins, _ = read_lock()
    for path in ENV_FILES:
        path.write_text(with_pins(path.read_text(), pins, path))
        print(f"wrote the lock's {len(pins)} pins into {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str]) -> int:
    commands = {"freeze": lambda: print(freeze(), end="") or 0, "check": check, "envs": envs, "cpu-torch": cpu_torch}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python requirements/lock.py {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
