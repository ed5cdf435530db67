"""A TPE sampler whose draws do not depend on kills, restarts or how many workers share a study.

Optuna's TPESampler(seed) draws from one random stream per process: a study killed and resumed,
or run by two workers instead of one, draws other parameters than an uninterrupted sequential run
with the same seed, so a kill would change the results. Here every trial takes a *slot*: the k-th
trial of the budget. A trial killed with its worker frees its slot, and the trial that replaces
it takes the same slot. The draws of slot k come from TPE seeded with (seed, k), fitted on the
finished trials of the study, so:

- a killed and resumed sequential study draws exactly what an uninterrupted one draws;
- while TPE still samples at random (its first `n_startup_trials`, 10), parallel workers draw
  exactly the sequential run's parameters: the same trials, the same best;
- after that, parallel workers see each other's finished trials in an order that depends on
  timing, so their TPE draws differ from a sequential run's (that holds for any parallel TPE).

The slot is recorded by the objective as the trial's user attribute `slot` (`claim_slot`), before
the first parameter is drawn; the sampler reads it from there.
"""

from __future__ import annotations

import numpy as np
import optuna

S = optuna.trial.TrialState


def interrupted(trial) -> bool:
    """Failed because its worker died (killed, lost node), not because the training diverged (a
    diverged trial is tagged `error` and keeps its slot: it used up budget)."""
    return trial.state == S.FAIL and "error" not in trial.user_attrs


def spent(trial) -> bool:
    """Whether the trial used up one trial of the budget: COMPLETE, PRUNED, or failed on its own (a
    diverged training). A trial of a dead worker did not: its slot runs again."""
    return trial.state in (S.COMPLETE, S.PRUNED) or (trial.state == S.FAIL and not interrupted(trial))


def claim_slot(study, trial) -> int:
    """The slot of a new trial: first the slots freed by interrupted trials, then new ones.

    Only trials numbered below this one are looked at, and those of them that have not recorded a
    slot yet (workers starting at the same moment) are given the earlier slots, in the order of
    their numbers. Every worker computes the same assignment without talking to the others."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    held = {t.user_attrs["slot"] for t in earlier if "slot" in t.user_attrs and not interrupted(t)}
    freed = sorted({t.user_attrs["slot"] for t in earlier if "slot" in t.user_attrs and interrupted(t)} - held)
    waiting = sum(1 for t in earlier if "slot" not in t.user_attrs and not t.state.is_finished())
    top = max((t.user_attrs["slot"] for t in earlier if "slot" in t.user_attrs), default=-1)
    order = freed + list(range(top + 1, top + 2 + waiting))
    return order[waiting]


class SlotSeededTPE(optuna.samplers.BaseSampler):
    """TPE (independent sampling, Optuna's defaults) seeded per slot: see the module's docstring."""

    def __init__(self, seed: int = 42):
        self.seed = seed
        self._by_slot: dict[int, optuna.samplers.TPESampler] = {}

    def _tpe(self, trial) -> optuna.samplers.TPESampler:
        slot = int(trial.user_attrs.get("slot", trial.number))
        if slot not in self._by_slot:
            seed = int(np.random.SeedSequence([self.seed, slot]).generate_state(1)[0])
            self._by_slot[slot] = optuna.samplers.TPESampler(seed=seed)
        return self._by_slot[slot]

    def infer_relative_search_space(self, study, trial):
        return {}  # independent sampling, as TPESampler's default (multivariate=False)

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self._tpe(trial).after_trial(study, trial, state, values)
        self._by_slot.pop(int(trial.user_attrs.get("slot", trial.number)), None)
