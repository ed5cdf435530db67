"""The GRU4Rec estimator: parameters, training loop, save and load."""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import torch

from .batching import SessionData, SessionRunner, index_training_events, item_positions
from .compiled import loss_spec, warn_eager_once
from .compiled import native as native_kernels
from .device import resolve_device
from .errors import DataError, GRU4RecError, ParameterError, TrainingDivergedError
from .losses import Loss
from .model import GRU4RecNetwork, HiddenState, SessionScorer
from .optim import AdagradM
from .rng import CounterRandom
from .sampling import SampleStore

NAN_CHECK_EVERY = 256  # steps between checks of the running loss (a check is a device sync)


class GRU4Rec:
    """GRU4Rec: session-based recommendation with recurrent networks (Hidasi et al., 2016, 2018).

    >>> model = GRU4Rec(loss="bpr-max", final_act="elu-0.5", layers=[224], batch_size=80, n_epochs=10)
    >>> model.fit(train_df)                     # columns SessionId, ItemId, Time
    >>> evaluate(model, test_df, cutoffs=(1, 5, 10, 20)).recall[20]
    """

    def __init__(self, params: dict | None = None, device="auto", seed: int = 42, **params_kw):
        from .params import validate_params

        merged = dict(params or {})
        merged.update(params_kw)
        self.params = validate_params(merged)
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.net: GRU4RecNetwork | None = None
        self.item_ids: np.ndarray | None = None
        self._item_lookup: pd.Index | None = None
        self.item_support: np.ndarray | None = None  # training events per item
        self.trained = False
        self.history: list[dict] = []

    # ----------------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return 0 if self.item_ids is None else len(self.item_ids)

    def item_index(self, ids) -> np.ndarray:
        """Model indices of the given original item ids; -1 where an id is unknown to the model."""
        if self._item_lookup is None:
            self._item_lookup = pd.Index(self.item_ids)
        return item_positions(self._item_lookup, ids)

    def require_trained(self):
        if not self.trained or self.net is None:
            raise GRU4RecError("the model is not trained (fit it, or load a trained model, before using it)")

    def session_scorer(self, width: int, device=None) -> SessionScorer:
        """Fresh hidden state for `width` session-parallel slots that scores every item (model protocol).

        The state lives where the network does (self.device); `device` must name the same one.
        """
        self.require_trained()
        if device is not None and torch.device(device) != self.device:
            raise ParameterError(f"the model is on {self.device}; it cannot score on {device}")
        return SessionScorer(self.net, width)

    def _generator(self) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed)
        return g

    # ----------------------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        session_key: str = "SessionId",
        item_key: str = "ItemId",
        time_key: str = "Time",
        verbose: bool = True,
        callback=None,
        compile="auto",
    ) -> list[dict]:
        """Train on events (one row per event). Prints one line per epoch when verbose.

        callback(info) is called after every epoch with the same dict that is appended to the
        returned history: epoch, loss, seconds, mb_per_s, events_per_s, n_steps, n_events. During
        the callback the model is usable as it is after that epoch (it may be evaluated, e.g. to
        prune a tuning trial early); if the callback raises, training stops there.
        compile: on a CPU, True and "auto" train with the compiled step (gru4rec.compiled: native
        code for the loss, the GRU layers' element-wise passes, the input embedding, the random
        numbers and the optimiser, built once per machine and cached on disk; where it cannot be
        built, training runs eagerly and says so once). On a GPU, True compiles the loss
        with torch.compile, and "auto" keeps the eager step until a saving is measured there.
        False is the eager step everywhere. Every choice trains the same model within float tolerance.
        Raises TrainingDivergedError if the loss becomes NaN; the model is then unusable.
        """
        p = self.params
        self.trained = False
        sd = self._index_items(data, session_key, item_key, time_key)
        g = self._generator()
        self.net = GRU4RecNetwork(self.n_items, p["layers"], p["embedding"], p["constrained_embedding"], self.device, g)
        items = torch.from_numpy(sd.items).to(self.device)
        rng = np.random.default_rng(self.seed)
        runner = self._epoch_runner(sd, items, rng)
        how = compilation(compile, p, runner.n_steps * p["n_epochs"], self.device)
        if how == "native":
            self.net.kernels = native_kernels()
            self.net.kernels.set_threads(torch.get_num_threads())
        try:
            return self._fit_epochs(sd, items, rng, runner, how, g, verbose, callback)
        finally:
            if self.net is not None:
                self.net.kernels = None  # a trained model holds no handle on the native library (pickle)

    def _fit_epochs(self, sd, items, rng, runner, how, g, verbose, callback):
        p = self.params
        step = _TrainingStep(self.net, p, self.item_support, g)
        if how == "loss":
            step.compile_loss()
        if verbose:
            print(
                f"Training GRU4Rec on {len(sd.items)} events, {sd.n_sessions} sessions, {self.n_items} items "
                f"(device: {self.device}, seed: {self.seed})",
                flush=True,
            )
        self.history = []
        for epoch in range(1, p["n_epochs"] + 1):
            if epoch > 1 and p["train_random_order"]:
                runner = self._epoch_runner(sd, items, rng)
            step.size_sample_store(runner.n_steps * p["n_epochs"])
            info = self._train_epoch(epoch, runner, step, verbose)
            self.history.append(info)
            if verbose:
                print(
                    f"Epoch{epoch} --> loss: {info['loss']:.6f} ({info['seconds']:.2f}s) "
                    f"[{info['mb_per_s']:.2f} mb/s | {info['events_per_s']:.0f} e/s]",
                    flush=True,
                )
            if callback is not None:
                self.trained = True  # evaluation reads a fresh hidden state and never the generator
                callback(info)
                self.trained = False
        self.trained = True
        if verbose:
            print(f"Total training time: {sum(h['seconds'] for h in self.history):.2f}s", flush=True)
        return self.history

    def _index_items(self, data, session_key, item_key, time_key) -> SessionData:
        """Check and sort the training events, build the item map and the item support."""
        _, sd, self.item_ids, self.item_support = index_training_events(data, session_key, item_key, time_key)
        self._item_lookup = None
        return sd

    def _epoch_runner(self, sd: SessionData, items: torch.Tensor, rng) -> SessionRunner:
        p = self.params
        # without extra samples a slot's only negatives are the other slots' targets: 2 slots at least
        runner = SessionRunner(
            items, sd.offsets, self._session_order(sd, rng), p["batch_size"], min_width=1 if p["n_sample"] > 0 else 2
        )
        if runner.n_steps == 0:
            raise DataError("training data has no session with at least 2 events: nothing to train on")
        return runner

    def _session_order(self, sd: SessionData, rng) -> np.ndarray:
        if self.params["train_random_order"]:
            return rng.permutation(sd.n_sessions)
        if self.params["time_sort"]:
            return np.argsort(sd.first_time, kind="stable")
        return np.arange(sd.n_sessions)

    def _train_epoch(self, epoch, runner: SessionRunner, step, verbose):
        state = step.new_state(runner.first_width)
        loss_sum = torch.zeros((), device=self.device)
        bar = _progress(runner.n_steps, epoch, verbose)
        self._sync()
        t0 = time.perf_counter()
        for t, X, T, _ in runner.steps(state):
            loss_sum += step(X, T, state.H)
            if (t + 1) % NAN_CHECK_EVERY == 0:
                self._check_loss(loss_sum, epoch, t)
                if bar is not None:
                    bar.update(NAN_CHECK_EVERY)
        self._check_loss(loss_sum, epoch, runner.n_steps - 1)
        self._sync()
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        n_steps, batch_size = runner.n_steps, self.params["batch_size"]
        return {
            "epoch": epoch,
            "loss": float(loss_sum) / batch_size / n_steps,
            "seconds": seconds,
            "mb_per_s": n_steps / seconds,
            "events_per_s": runner.n_events / seconds,
            "n_steps": n_steps,
            "n_events": runner.n_events,
        }

    def _check_loss(self, loss_sum, epoch, step):
        if not torch.isfinite(loss_sum):
            self.trained = False
            self.net = None
            raise TrainingDivergedError(
                f"the loss became {float(loss_sum)} in epoch {epoch} (by step {step + 1}); training stopped and "
                f"the model is not usable (try a lower learning_rate)"
            )

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ----------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save parameters, item map, item support and weights (safetensors + JSON header; no code runs on load)."""
        from . import __version__
        from .serialization import save_model_file

        self.require_trained()
        tensors = self.net.state()
        if self.item_support is not None:
            tensors[ITEM_SUPPORT] = torch.from_numpy(self.item_support)
        header = {
            "params": self.params,
            "seed": self.seed,
            "library_version": __version__,
            "n_items": self.n_items,
            "trained_on_device": str(self.device),
            "history": self.history,
        }
        save_model_file(path, header, tensors, self.item_ids)

    @classmethod
    def load(cls, path, device="auto") -> GRU4Rec:
        """Load a model saved by `save`, on any device (a GPU-trained model loads on a CPU)."""
        from .serialization import load_model_file

        dev = resolve_device(device)
        header, tensors, item_ids = load_model_file(path, device=dev)
        try:
            model = cls(header["params"], device=dev, seed=header.get("seed", 42))
            support = tensors.pop(ITEM_SUPPORT, None)  # absent from files of earlier versions
            if support is not None and support.shape != (len(item_ids),):
                raise ValueError(f"{ITEM_SUPPORT} has shape {tuple(support.shape)}, expected ({len(item_ids)},)")
            p = model.params
            model.net = GRU4RecNetwork.from_state(
                tensors, len(item_ids), p["layers"], p["embedding"], p["constrained_embedding"], dev
            )
        except ParameterError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DataError(f"{path}: model file is inconsistent with its parameters ({e})") from None
        model.item_ids = np.asarray(item_ids)
        model.item_support = None if support is None else support.cpu().numpy().astype(np.int64)
        model.history = header.get("history", [])
        model.trained = True
        return model


ITEM_SUPPORT = "item_support"  # model-file tensor: training events per item


class _TrainingStep:
    """One training step: sampled negatives, forward, log-Q offsets, loss, backward, update."""

    def __init__(self, net: GRU4RecNetwork, p: dict, item_support: np.ndarray, generator):
        self.net, self.p = net, p
        self.random = CounterRandom(generator)  # the dropout masks and the samples
        self.random.kernels = net.kernels
        self.optimiser = AdagradM(net, p["learning_rate"], p["momentum"])
        self.loss = Loss(p["loss"], p["final_act"], p["bpreg"])
        self.scale = 1.0 / p["batch_size"]  # a step's loss is divided by the configured batch size
        self.support = torch.from_numpy(item_support.astype(np.float32)).to(net.device)
        self.log_q = None
        if p["logq"] > 0:  # log-Q correction: targets by support, samples by support^alpha
            log_support = p["logq"] * torch.log(self.support)
            self.log_q = (log_support, log_support * p["sample_alpha"])
        self.store = None
        self.compiled_loss = None  # used for full-width steps only: a narrower one would recompile
        self.native_loss = None if net.kernels is None else loss_spec(p["loss"], p["final_act"], p["bpreg"])

    def compile_loss(self):
        self.compiled_loss = torch.compile(self.loss._fn, dynamic=False)

    def _loss(self, O_u, cache, T, S):
        """(loss, dLoss/dO_u). The native loss reads the unique items' scores as they are, with the
        log-Q offsets of the targets and of the sampled items; the others spread the scores to the
        score matrix (targets, then samples: an offset per column) and sum the gradient's columns back."""
        off_t = None if self.log_q is None else self.log_q[0].index_select(0, T)
        sampled = self.log_q is not None and S is not None
        if self.native_loss is not None:
            off_u = self.log_q[1].index_select(0, cache.out.ids) if sampled else None
            return self.net.kernels.loss(self.native_loss, O_u, cache.scored, cache.b, off_t, off_u, self.scale)
        offset = torch.cat([off_t, self.log_q[1].index_select(0, S)]) if sampled else off_t
        O = self.net.spread(O_u, cache)
        loss = None
        if self.compiled_loss is not None and O.shape[0] == self.p["batch_size"]:
            try:
                loss, dO = self.compiled_loss(O, offset, self.scale)
            except Exception as e:  # no C++ compiler, an unsupported platform: train on, eagerly
                print(f"torch.compile failed ({type(e).__name__}); the loss runs uncompiled", file=sys.stderr)
                self.compiled_loss = None
        if loss is None:
            loss, dO = self.loss(O, offset, self.scale)
        return loss, self.net.gather_columns(dO, cache)

    def size_sample_store(self, n_steps_total: int):
        """Create the sample store once; larger than all the epochs need would only cost drawing time."""
        p = self.p
        if self.store is None and p["n_sample"] > 0:
            rows = min(p["sample_store_size"] // p["n_sample"], n_steps_total)
            self.store = SampleStore(self.support, p["n_sample"], p["sample_alpha"], rows * p["n_sample"], self.random)

    def new_state(self, width: int) -> HiddenState:
        return HiddenState(self.net, width)

    def __call__(self, X, T, H):
        """Train on inputs X -> targets T with hidden states H (replaced); returns the summed loss."""
        S = self.store.next() if self.store is not None else None
        Y = T if S is None else torch.cat([T, S])
        O_u, cache = self.net.forward_train(X, Y, H, self.p["dropout_p_embed"], self.p["dropout_p_hidden"], self.random)
        loss, dO_u = self._loss(O_u, cache, T, S)
        self.optimiser.step(*self.net.backward(cache, dO_u))
        return loss


# Seconds a compiled loss saves per step and per score-matrix element on a GPU, by loss, where a
# measurement showed a saving, and the cost of a first compilation. GPU: not measured yet, so
# "auto" keeps the eager step there. (On a CPU "auto" means the compiled step: benchmarks/README.md,
# "The compiled step".)
COMPILE_SAVING_PER_ELEMENT: dict[str, float] = {}
COMPILE_SECONDS = 60.0


def compilation(compile, p: dict, n_steps: int, device: torch.device) -> str | None:
    """Resolve fit's `compile` option: "native" (the compiled step, on a CPU), "loss" (the loss
    compiled with torch.compile, on a GPU) or None (eager)."""
    if compile not in (True, False, "auto"):
        raise ParameterError(f"compile must be True, False or 'auto', got {compile!r}")
    if compile is False:
        return None
    if device.type == "cpu":
        if torch.get_default_dtype() != torch.float32:
            return None  # the kernels are float32 code
        if native_kernels() is None:
            warn_eager_once()
            return None
        return "native"
    if compile is True:
        return "loss"
    elements = p["batch_size"] * (p["batch_size"] + p["n_sample"])
    saving = n_steps * elements * COMPILE_SAVING_PER_ELEMENT.get(p["loss"], 0.0)
    return "loss" if saving > COMPILE_SECONDS else None


def _progress(total, epoch, verbose):
    if not verbose or not sys.stderr.isatty() or total < 10 * NAN_CHECK_EVERY:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"Epoch{epoch}", unit="mb", leave=False, file=sys.stderr)
