"""The compiled training step on a CPU: the step's element-wise and row-wise pieces as native code.

A GRU4Rec step on a CPU is bound by the number of passes over its data and by per-operation
overhead, not by arithmetic: eager PyTorch runs the loss as a dozen passes over the score matrix,
each GRU layer as a dozen small element-wise operations per direction, and the sparse Adagrad
update as a gather of every touched row with its optimiser state, several passes, and a
write-back. The pieces in `compiled_step.c` do each of these in one pass: the loss reads the
scores of the unique items and writes their gradient (no score matrix per column, no column sum),
a GRU layer's gates, output and dropout forward, and its gradient's element-wise part backward,
are two kernels each way around torch's products, the input embedding is gathered and dropped out
in one pass, the optimiser updates the touched rows where they are (only the parameter slot is
gathered, for the products), the dense parameters take their Adagrad step in one pass each, and
the dropout masks and negative samples are drawn in the kernels (the same numbers as
gru4rec.rng's eager draws). The matrix products stay torch's.

The file is plain C (no torch headers: it builds in about a second) and is built once per
machine with the C compiler ($CC, else cc, gcc or clang), then loaded from the on-disk cache
(`$GRU4REC_CACHE`, else `$XDG_CACHE_HOME/gru4rec` or `~/.cache/gru4rec`), keyed by the source,
the compiler and the CPU. Its parallel loops use as many OpenMP threads as torch
(torch.get_num_threads() when a training starts). Where no compiler works, `native()` returns None and
training runs eagerly; fit says so once per process.

Why not torch.compile: a step's shapes change every step (the number of unique touched items),
so inductor would compile with dynamic shapes or per shape, and it does not fuse the gather and
scatter of rows with the update. Compiling only the loss was measured slower on a CPU
(benchmarks/README.md, "The compiled step").
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from .rng import keep_scale, keep_threshold

SOURCE = Path(__file__).with_name("compiled_step.c")
# the first set of flags that builds wins: native instructions and OpenMP where the compiler has them
# (-fno-math-errno: sqrtf need not set errno, so that the optimiser's loops vectorise)
FLAG_SETS = (
    ["-O3", "-fno-math-errno", "-march=native", "-fopenmp"],
    ["-O3", "-fno-math-errno", "-fopenmp"],
    ["-O3", "-fno-math-errno"],
)


def cache_dir() -> Path:
    if os.environ.get("GRU4REC_CACHE"):
        return Path(os.environ["GRU4REC_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gru4rec"


def _compiler() -> list[str] | None:
    """The compiler command: $CC (which may carry arguments, e.g. "ccache gcc"), else cc, gcc or clang."""
    if os.environ.get("CC"):
        cmd = shlex.split(os.environ["CC"])
        return [shutil.which(cmd[0]), *cmd[1:]] if shutil.which(cmd[0]) else None
    return next(([c] for c in map(shutil.which, ("cc", "gcc", "clang")) if c), None)


def _cpu_identity() -> str:
    """What the built code may assume about the CPU (-march=native): its model and feature flags,
    so that a cache shared between machines (a cluster's home directory) keeps one build per CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        # x86: model name, flags; ARM: CPU implementer / part, Features
        keys = ("model name", "flags", "CPU implementer", "CPU part", "Features")
        return "\n".join(sorted({ln for ln in text.splitlines() if ln.startswith(keys)}))
    except OSError:
        return platform.processor() + platform.machine()


class BuildError(RuntimeError):
    pass


def build(cc: list[str], directory: Path) -> Path:
    """Build the library with `cc` into `directory` (if this source, compiler and CPU have no build
    there yet) and return its path. Concurrent builders are safe: each writes its own file and
    renames it into place."""
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    identity = [SOURCE.read_text(), " ".join(cc), version, _cpu_identity(), repr(FLAG_SETS)]
    key = hashlib.sha256("\0".join(identity).encode()).hexdigest()
    target = directory / f"compiled_step-{key[:20]}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        tmp = directory / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        cmd = [*cc, *flags, "-std=c11", "-shared", "-fPIC", str(SOURCE), "-o", str(tmp), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            os.replace(tmp, target)
            return target
        tmp.unlink(missing_ok=True)
        errors.append(f"{' '.join(flags)}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    raise BuildError("; ".join(errors))


@functools.cache
def native() -> NativeKernels | None:
    """The compiled kernels of this process (built or taken from the cache on first use), or None
    where they cannot be built here; the reason is then in `why_not_native()`."""
    if sys.platform == "win32":
        _why_not.append("not supported on Windows")
        return None
    cc = _compiler()
    if cc is None:
        named = f" ($CC is {os.environ['CC']!r})" if os.environ.get("CC") else ""
        _why_not.append(f"no C compiler found{named} (install gcc or clang, or set CC)")
        return None
    try:
        try:
            path = build(cc, cache_dir())
        except (OSError, BuildError):  # e.g. the cache directory is not writable: a private one
            path = build(cc, Path(tempfile.mkdtemp(prefix="gru4rec-")))
        return NativeKernels(ctypes.CDLL(str(path)))
    except (OSError, subprocess.SubprocessError, BuildError) as e:
        _why_not.append(f"building {SOURCE.name} with {' '.join(cc)} failed ({e})")
        return None


_why_not: list[str] = []


def why_not_native() -> str:
    return _why_not[-1] if _why_not else ""


def warn_eager_once():
    """Say once per process that the compiled step is unavailable and why."""
    if not getattr(warn_eager_once, "done", False):
        warn_eager_once.done = True
        warnings.warn(f"the compiled training step is unavailable: {why_not_native()}; training eagerly", stacklevel=4)


F32 = torch.float32  # the kernels' float type; their outputs are float32 whatever the default dtype


def _p(t: torch.Tensor | None) -> int | None:
    """A tensor's address for the kernels, None (NULL) for no tensor."""
    return None if t is None else t.data_ptr()


class NativeKernels:
    """Typed entry points of the built library, on contiguous CPU tensors (float32, int64)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        i64, u32, f32, ptr = ctypes.c_int64, ctypes.c_uint32, ctypes.c_float, ctypes.c_void_p
        sig = {  # pointers are passed as addresses (Tensor.data_ptr()), None for NULL
            "unique_ids": (i64, [ptr, i64, ptr, ptr, ptr]),
            "gather_rows": (None, [ptr, i64, i64, ptr, i64, ptr]),
            "xe_loss": (ctypes.c_int, [ptr, i64, i64, ptr, i64, ptr, ptr, f32, ptr, ptr]),
            "bprmax_loss": (ctypes.c_int, [ptr, i64, i64, ptr, i64, ptr, ptr, f32, f32, f32, ptr, ptr]),
            "adagrad_rows": (None, [ptr, i64, i64, ptr, i64, ptr, ptr, f32, f32, f32]),
            "adagrad_dense": (None, [ptr, ptr, ptr, ptr, i64, f32, f32, f32]),
            "dropout_draw": (None, [u32, u32, i64, u32, f32, ptr]),
            "sample_draw": (None, [u32, u32, i64, ptr, i64, ptr, i64, ptr]),
            "embed_rows": (None, [ptr, i64, ptr, i64, i64, u32, u32, u32, f32, ptr, ptr]),
            "add_rows": (None, [ptr, i64, ptr, i64, i64, ptr, ptr]),
            "gru_gates": (None, [ptr, ptr, i64, ptr, ptr, i64, i64]),
            "gru_output": (None, [ptr, ptr, i64, ptr, ptr, i64, i64, ptr, u32, u32, u32, f32, ptr]),
            "gru_backward_out": (None, [ptr, ptr, ptr, ptr, ptr, i64, i64, ptr]),
            "gru_backward_r": (None, [ptr, ptr, ptr, i64, i64, ptr, ptr]),
            "set_threads": (None, [ctypes.c_int]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self._pos: torch.Tensor | None = None  # unique_ids' scratch: -1 per item between calls
        self._pos_lock = threading.Lock()  # ctypes lets go of the GIL: models trained in threads share _pos

    def set_threads(self, n: int):
        """Threads of the parallel kernels (fit passes torch.get_num_threads())."""
        self.lib.set_threads(n)

    def unique(self, ids: torch.Tensor, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(unique ids in order of first use, position of every use among them), like torch.unique's
        (ids, inverse) but in one pass and unsorted."""
        ids = ids.contiguous()
        m = len(ids)
        uniq, where = torch.empty(m, dtype=torch.int64), torch.empty(m, dtype=torch.int64)
        with self._pos_lock:
            if self._pos is None or len(self._pos) < n_items:
                self._pos = torch.full((n_items,), -1, dtype=torch.int32)
            u = self.lib.unique_ids(_p(ids), m, _p(self._pos), _p(uniq), _p(where))
        return uniq[:u], where

    def gather(self, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """table[ids, 0:1]: the parameter slot of the rows ids, as (u, 1, dim)."""
        u, (_, slots, dim) = len(ids), table.shape
        out = torch.empty((u, 1, dim), dtype=F32)
        self.lib.gather_rows(_p(table), slots, dim, _p(ids), u, _p(out))
        return out

    def loss(self, spec, O_u, scored, b, off_t, off_u, scale):
        """(loss summed over rows, dLoss/dO_u * scale) of the loss `spec` (see loss_spec).

        O_u (b, u): the scores of the unique items; column j of the score matrix scores unique item
        scored[j]: the first b columns the targets, the others the samples. The log-Q offset of
        target column j is off_t[j] (b,), that of a sample column of item r off_u[r] (u,): a
        sample's offset depends on its item only. None: no offset."""
        u = O_u.shape[1]
        dO_u, value = torch.empty((b, u), dtype=F32), ctypes.c_double()
        O_u, scored = O_u.contiguous(), scored.contiguous()  # these names keep them alive for the call
        off_t, off_u = (None if t is None else t.contiguous() for t in (off_t, off_u))
        args = (_p(O_u), b, u, _p(scored), len(scored), _p(off_t), _p(off_u))
        if spec[0] == "cross-entropy":
            failed = self.lib.xe_loss(*args, scale, _p(dO_u), ctypes.byref(value))
        else:
            failed = self.lib.bprmax_loss(*args, spec[1], spec[2], scale, _p(dO_u), ctypes.byref(value))
        if failed:
            raise MemoryError("the compiled loss ran out of memory")
        return torch.tensor(value.value, dtype=torch.float32), dO_u

    def adagrad_rows(self, table, ids, g, idle, lr, momentum, eps):
        _, slots, dim = table.shape
        g = g.contiguous()
        self.lib.adagrad_rows(_p(table), slots, dim, _p(ids), len(ids), _p(g), _p(idle), lr, momentum, eps)

    def adagrad_dense(self, p, g, acc, vel, lr, momentum, eps):
        g = g.contiguous()
        self.lib.adagrad_dense(_p(p), _p(g), _p(acc), _p(vel), p.numel(), lr, momentum, eps)

    def categorical(self, keys, n, cdf, guide):
        """n draws of the items with cumulative probabilities cdf (gru4rec.rng.CounterRandom.categorical),
        searched from the guide table `guide` (rng.guide_table)."""
        out = torch.empty(n, dtype=torch.int64)
        self.lib.sample_draw(*keys, n, _p(cdf), len(cdf), _p(guide), len(guide), _p(out))
        return out

    def dropout_mask(self, keys, shape, threshold, scale):
        """The inverted-dropout mask of the draw with these keys (gru4rec.rng.CounterRandom.dropout_mask)."""
        out = torch.empty(shape, dtype=F32)
        self.lib.dropout_draw(*keys, out.numel(), threshold, scale, _p(out))
        return out

    @staticmethod
    def _draw(p, random):
        """The arguments of a kernel that draws a dropout mask: keys, threshold, scale (none: 0)."""
        return (*random.next_keys(), keep_threshold(p), keep_scale(p)) if p > 0 else (0, 0, 0, 1.0)

    def embed_rows(self, rows, where, p, random):
        """GRU4RecNetwork.embed_rows: rows (u, dim) with unit column stride."""
        assert rows.stride(1) == 1
        b, dim = len(where), rows.shape[1]
        where = where.contiguous()
        x, mask = torch.empty((b, dim), dtype=F32), torch.empty((b, dim), dtype=F32) if p > 0 else None
        self.lib.embed_rows(_p(rows), rows.stride(0), _p(where), b, dim, *self._draw(p, random), _p(mask), _p(x))
        return x, mask

    def add_rows(self, dst, where, d, mask):
        """GRU4RecNetwork.add_rows: dst (u, dim) with unit column stride, in place."""
        assert dst.stride(1) == 1
        where, d = where.contiguous(), d.contiguous()
        self.lib.add_rows(_p(dst), dst.stride(0), _p(where), len(where), dst.shape[1], _p(d), _p(mask))

    def gru_forward(self, a, h, Wrz, Wh, p_hidden, random):
        """A GRU layer in training (GRU4RecNetwork._gru_train): the products by torch, the gates,
        the output and its dropout mask (drawn here from `random`) by the kernels."""
        n = h.shape[1]
        h = h.contiguous()
        assert a.stride(1) == 1
        # the kernels add the preactivation's slices (an addmm with a strided addend is slow)
        rz = h @ Wrz
        rh = torch.empty_like(h)
        self.lib.gru_gates(_p(rz), _p(a[:, n:]), a.stride(0), _p(h), _p(rh), *h.shape)
        c = rh @ Wh
        out, mask = torch.empty_like(h), torch.empty_like(h) if p_hidden > 0 else None
        draw = self._draw(p_hidden, random)
        self.lib.gru_output(_p(c), _p(a), a.stride(0), _p(h), _p(rz), *h.shape, _p(out), *draw, _p(mask))
        return out, rz, rh, c, mask

    def gru_backward(self, lc, d_out, Wh):
        """(d_a, dWh, dWrz, dBh) of a GRU layer (GRU4RecNetwork._gru_backward) from the gradient of
        its output d_out; the products by torch."""
        b, n = lc.h.shape
        d_out, h = d_out.contiguous(), lc.h.contiguous()  # (rz, c and the mask are gru_forward's own)
        d_a = torch.empty((b, 3 * n), dtype=F32)
        self.lib.gru_backward_out(_p(d_out), _p(lc.mask), _p(lc.rz), _p(lc.c), _p(h), b, n, _p(d_a))
        d_ac = d_a[:, :n]
        d_rh = d_ac @ Wh.t()
        dBh = torch.empty(3 * n, dtype=F32)
        self.lib.gru_backward_r(_p(d_rh), _p(lc.rz), _p(h), b, n, _p(d_a), _p(dBh))
        return d_a, lc.rh.t() @ d_ac, h.t() @ d_a[:, n:], dBh


def loss_spec(loss: str, final_act: str, bpreg: float):
    """The compiled loss for these parameters, or None where the loss runs eagerly: cross-entropy,
    and BPR-max after an elu or linear final activation (the papers' losses)."""
    if loss == "cross-entropy":
        return ("cross-entropy",)
    if loss == "bpr-max" and final_act == "linear":
        return ("bpr-max", 0.0, float(bpreg))
    if loss == "bpr-max" and final_act.startswith("elu-") and float(final_act[4:]) > 0:
        return ("bpr-max", float(final_act[4:]), float(bpreg))
    return None
