"""TPE search through Optuna's ask-and-tell, in batches that MOP trains together.

A study with ``search.method: tpe`` trains ``search.num_configs`` configs in batches of
``search.batch_size`` (0 → ``max(2, num_configs // 3)``). Each batch is asked from Optuna, trained with MOP for
all epochs, and told back (each config's best value of ``train.metric`` in ``train.direction``) before the
next batch is asked. Model ids continue across batches (m000, m001, ... ); the leaderboard covers all batches.

Determinism: batch ``b`` is a pure function of (seed, b, the configs and results of batches < b). The
sampler is rebuilt for every batch (``TPESampler(seed=derive_seed(seed, "tpe", b))``) and the history is added
as finished trials, so an interrupted run that resumes asks exactly the batch the uninterrupted run would have
asked. The first batch is TPE's random start-up phase (``n_startup_trials`` = first batch size); later batches
are TPE proposals (``constant_liar`` keeps the proposals of one batch apart from each other).

Where it runs: the batches are steps of the run's plan (plan.py), the same for the CLI and Airflow; the
``next_batch`` step tells a batch's results and asks the next one (batches.py). Optuna is imported only when
asking; the distributions map to Optuna's as core/distributions.py lists.
"""
from __future__ import annotations

import math

from cerebro_ops.core.distributions import distribution
from cerebro_ops.core.search.base import History, Searcher
from cerebro_ops.core.seeds import derive_seed


class TpeSearch(Searcher):
    method = "tpe"
    is_adaptive = True

    def batch_size(self) -> int:
        n = self.spec.search.num_configs
        b = self.spec.search.batch_size or max(2, n // 3)
        return max(1, min(b, n))

    def batch_sizes(self) -> list[int]:
        n, b = self.spec.search.num_configs, self.batch_size()
        return [min(b, n - i) for i in range(0, n, b)]

    def ask(self, batch: int, history: History = ()) -> list[dict]:
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sizes = self.batch_sizes()
        ours = {p.name: distribution(p) for p in self.spec.search.space}
        theirs = {name: d.to_optuna() for name, d in ours.items()}
        sampler = optuna.samplers.TPESampler(seed=derive_seed(self.spec.seed, "tpe", batch), n_startup_trials=sizes[0],
                                             constant_liar=True)
        direction = "minimize" if self.spec.train.direction == "min" else "maximize"
        study = optuna.create_study(direction=direction, sampler=sampler)
        for params, value in history:
            ok = value is not None and math.isfinite(value)  # NaN and failures are no observation
            study.add_trial(create_trial(params={k: d.encode(params[k]) for k, d in ours.items()},
                                         distributions=theirs, value=float(value) if ok else None,
                                         state=TrialState.COMPLETE if ok else TrialState.FAIL))
        out = []
        for _ in range(sizes[batch]):
            trial = study.ask(theirs)
            out.append({k: d.decode(trial.params[k]) for k, d in ours.items()})
        return out
