"""The GRU4Rec estimator: parameters, training loop, save and load."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .batching import build_schedule
from .device import resolve_device
from .errors import DataError, GRU4RecError, TrainingDivergedError
from .losses import Loss
from .model import GRU4RecNetwork
from .optim import AdagradM
from .sampling import SampleStore

NAN_CHECK_EVERY = 256  # steps between checks of the running loss (a check is a device sync)


@dataclass
class SessionData:
    """Events sorted by (session, time), items mapped to model indices."""
    items: np.ndarray        # (n_events,) int64 item indices
    offsets: np.ndarray      # (n_sessions + 1,) session k is items[offsets[k]:offsets[k+1]]
    first_time: np.ndarray   # (n_sessions,) time of each session's first event


def sort_sessions(df: pd.DataFrame, session_key: str, time_key: str) -> pd.DataFrame:
    """Sort events by (session, time) unless they already are; stable, so ties keep file order."""
    s = df[session_key].to_numpy()
    t = df[time_key].to_numpy()
    if s.dtype.kind in "iuf" and np.all(s[1:] >= s[:-1]) and np.all((s[1:] != s[:-1]) | (t[1:] >= t[:-1])):
        return df
    return df.sort_values([session_key, time_key], kind="stable")


def session_data(df: pd.DataFrame, item_index: np.ndarray, session_key: str, time_key: str) -> SessionData:
    """Build SessionData from events already sorted by session and time."""
    s = df[session_key].to_numpy()
    boundaries = np.flatnonzero(s[1:] != s[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(s)]]).astype(np.int64)
    times = df[time_key].to_numpy()
    return SessionData(items=np.array(item_index, dtype=np.int64), offsets=offsets, first_time=times[offsets[:-1]])


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
        if isinstance(ids, (pd.Series, pd.Index, np.ndarray)):
            target = pd.Index(ids)
        else:  # a Python list may mix types ([3, 7, "x"]): keep each id's own type
            target = pd.Index(list(ids), dtype=object)
        return self._item_lookup.get_indexer(target)

    def _require_trained(self):
        if not self.trained or self.net is None:
            raise GRU4RecError("the model is not trained (fit it, or load a trained model, before using it)")

    def _generator(self) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed)
        return g

    # ----------------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, session_key: str = "SessionId", item_key: str = "ItemId",
            time_key: str = "Time", verbose: bool = True, callback=None) -> list[dict]:
        """Train on events (one row per event). Prints one line per epoch when verbose.

        callback(info) is called after every epoch with the same dict that is appended to the
        returned history: epoch, loss, seconds, mb_per_s, events_per_s, n_steps, n_events.
        Raises TrainingDivergedError if the loss becomes NaN; the model is then unusable.
        """
        from .data import validate_events
        p = self.params
        self.trained = False
        df = validate_events(data, session_key, item_key, time_key, source="training data")
        df = sort_sessions(df, session_key, time_key)
        codes, uniques = pd.factorize(df[item_key], sort=True)
        self.item_ids = np.asarray(uniques)
        self._item_lookup = None
        sd = session_data(df, codes, session_key, time_key)
        n_items = len(self.item_ids)
        g = self._generator()
        self.net = GRU4RecNetwork(n_items, p["layers"], p["embedding"], p["constrained_embedding"], self.device, g)
        optimiser = AdagradM(self.net, p["learning_rate"], p["momentum"])
        loss_fn = Loss(p["loss"], p["final_act"], p["bpreg"])
        support = torch.from_numpy(np.bincount(sd.items, minlength=n_items).astype(np.float32)).to(self.device)
        store = None
        log_q = None
        if p["logq"] > 0:
            log_support = p["logq"] * torch.log(support)
            log_q = (log_support, log_support * p["sample_alpha"])
        items = torch.from_numpy(sd.items).to(self.device)
        rng = np.random.default_rng(self.seed)
        n_sessions = len(sd.offsets) - 1
        if verbose:
            print(f"Training GRU4Rec on {len(df)} events, {n_sessions} sessions, {n_items} items "
                  f"(device: {self.device}, seed: {self.seed})", flush=True)
        epoch_plan = None
        self.history = []
        for epoch in range(1, p["n_epochs"] + 1):
            if epoch_plan is None or p["train_random_order"]:
                if p["train_random_order"]:
                    order = rng.permutation(n_sessions)
                elif p["time_sort"]:
                    order = np.argsort(sd.first_time, kind="stable")
                else:
                    order = np.arange(n_sessions)
                epoch_plan = _EpochPlan(sd, order, p["batch_size"], 1 if p["n_sample"] > 0 else 2, items)
                if epoch_plan.n_steps == 0:
                    raise DataError("training data has no session with at least 2 events: nothing to train on")
            if store is None and p["n_sample"] > 0:
                # a store larger than all the epochs need would only cost drawing time
                rows = min(p["sample_store_size"] // p["n_sample"], epoch_plan.n_steps * p["n_epochs"])
                store = SampleStore(support, p["n_sample"], p["sample_alpha"], rows * p["n_sample"], g)
            info = self._train_epoch(epoch, epoch_plan, optimiser, loss_fn, store, log_q, g, verbose)
            self.history.append(info)
            if verbose:
                print(f"Epoch{epoch} --> loss: {info['loss']:.6f} ({info['seconds']:.2f}s) "
                      f"[{info['mb_per_s']:.2f} mb/s | {info['events_per_s']:.0f} e/s]", flush=True)
            if callback is not None:
                callback(info)
        self.trained = True
        if verbose:
            total = sum(h["seconds"] for h in self.history)
            print(f"Total training time: {total:.2f}s", flush=True)
        return self.history

    def _train_epoch(self, epoch, plan, optimiser, loss_fn, store, log_q, g, verbose):
        p, net = self.params, self.net
        batch_size, p_embed, p_hidden = p["batch_size"], p["dropout_p_embed"], p["dropout_p_hidden"]
        H = net.init_hidden(plan.width[0])
        loss_sum = torch.zeros((), device=self.device)
        bar = _progress(plan.n_steps, epoch, verbose)
        self._sync()
        t0 = time.perf_counter()
        for t in range(plan.n_steps):
            w = plan.width[t]
            keep = plan.shrink.get(t)
            if keep is not None:
                H = [h.index_select(0, keep) for h in H]
            if plan.has_start[t]:
                reset = plan.keep[t, :w]
                H = [h * reset for h in H]
            X = plan.inputs[t, :w]
            T = plan.targets[t, :w]
            S = store.next() if store is not None else None
            Y = T if S is None else torch.cat([T, S])
            O, cache = net.forward_train(X, Y, H, p_embed, p_hidden, g)
            offset = None
            if log_q is not None:  # log-Q correction: targets by support, samples by support^alpha
                offset = log_q[0].index_select(0, T)
                if S is not None:
                    offset = torch.cat([offset, log_q[1].index_select(0, S)])
            loss, dO = loss_fn(O, offset, 1.0 / batch_size)  # a step's loss is divided by the configured batch size
            dense, sparse = net.backward(cache, dO)
            optimiser.step(dense, sparse)
            loss_sum += loss
            if (t + 1) % NAN_CHECK_EVERY == 0:
                self._check_loss(loss_sum, epoch, t)
                if bar is not None:
                    bar.update(NAN_CHECK_EVERY)
        self._check_loss(loss_sum, epoch, plan.n_steps - 1)
        self._sync()
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        return {"epoch": epoch, "loss": float(loss_sum) / batch_size / plan.n_steps, "seconds": seconds,
                "mb_per_s": plan.n_steps / seconds, "events_per_s": plan.n_events / seconds,
                "n_steps": plan.n_steps, "n_events": plan.n_events}

    def _check_loss(self, loss_sum, epoch, step):
        if not torch.isfinite(loss_sum):
            self.trained = False
            self.net = None
            raise TrainingDivergedError(
                f"the loss became {float(loss_sum)} in epoch {epoch} (by step {step + 1}); training stopped and "
                f"the model is not usable (try a lower learning_rate)")

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ----------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save parameters, item map and weights (safetensors + JSON header; no code runs on load)."""
        from . import __version__
        from .serialization import save_model_file
        self._require_trained()
        tensors = {k: v for k, v in self.net.params.items() if k != "WyBy"}
        tensors["Wy"] = self.net.params["WyBy"][:, :-1]
        tensors["By"] = self.net.params["WyBy"][:, -1]
        header = {"params": self.params, "seed": self.seed, "library_version": __version__,
                  "n_items": self.n_items, "trained_on_device": str(self.device), "history": self.history}
        save_model_file(path, header, tensors, self.item_ids)

    @classmethod
    def load(cls, path, device="auto") -> "GRU4Rec":
        """Load a model saved by `save`, on any device (a GPU-trained model loads on a CPU)."""
        from .serialization import load_model_file
        dev = resolve_device(device)
        header, tensors, item_ids = load_model_file(path, device=dev)
        try:
            model = cls(header["params"], device=dev, seed=header.get("seed", 42))
            p = model.params
            net = GRU4RecNetwork(len(item_ids), p["layers"], p["embedding"], p["constrained_embedding"], dev, init=False)
            wy, by = tensors.pop("Wy"), tensors.pop("By")
            tensors["WyBy"] = torch.cat([wy, by.reshape(-1, 1)], dim=1).contiguous()
            reference = GRU4RecNetwork(2, p["layers"], p["embedding"], p["constrained_embedding"], torch.device("meta"))
            if set(tensors) != set(reference.params):
                raise KeyError(f"tensors {sorted(set(tensors) ^ set(reference.params))}")
            net.set_params({k: tensors[k].to(torch.float32).contiguous() for k in reference.params})
        except (KeyError, TypeError, RuntimeError) as e:
            raise DataError(f"{path}: model file is inconsistent with its parameters ({e})") from None
        model.net = net
        model.item_ids = np.asarray(item_ids)
        model.history = header.get("history", [])
        model.trained = True
        return model


class _EpochPlan:
    """A schedule turned into device tensors of item indices, ready for the training loop."""

    def __init__(self, sd: SessionData, order, batch_size, min_width, items: torch.Tensor):
        sched = build_schedule(sd.offsets, order, batch_size, min_width)
        dev = items.device
        ev = torch.from_numpy(np.maximum(sched.inputs, 0)).to(dev)
        self.inputs = items[ev]
        self.targets = items[(ev + 1).clamp_(max=len(items) - 1)]
        self.keep = torch.from_numpy(~sched.starts).to(dev, torch.float32).unsqueeze(2)
        self.has_start = sched.starts.any(axis=1).tolist()
        self.width = sched.width.tolist()
        self.shrink = {t: torch.from_numpy(k).to(dev) for t, k in sched.shrink.items()}
        self.n_steps = sched.n_steps
        self.n_events = sched.n_events


def _progress(total, epoch, verbose):
    if not verbose or not sys.stderr.isatty() or total < 10 * NAN_CHECK_EVERY:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=f"Epoch{epoch}", unit="mb", leave=False, file=sys.stderr)
