"""The neutral step graph of one study run.

    grid / random:  prepare → partition → epoch_1 … epoch_N → select → register
    tpe:            prepare → partition → [batch_1: epoch_1 … epoch_N → next_batch] → … → [batch_B: epoch_1 … epoch_N]
                    → select → register

Pure (no Airflow, Spark or TensorFlow). The Airflow DAG factory and the CLI both walk this plan, so the two
can never disagree about order or dependencies. The plan is the most a run may do: a run triggered with fewer
epochs or configs turns the extra steps into no-ops (the study functions return ``{"skipped": ...}``).
"""
from __future__ import annotations

from dataclasses import dataclass

from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.spec import StudySpec

# kind -> the cerebro_ops.study function that runs a step of it, and the step's fields it takes after
# (spec, run_id): the one dispatch of study.run (the CLI) and the Airflow operators.
STEP_FUNCTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prepare": ("prepare", ()), "partition": ("partition", ()), "epoch": ("run_epoch", ("epoch", "batch")),
    "next_batch": ("next_batch", ("batch",)), "select": ("select", ()), "register": ("register", ()),
}
KINDS = tuple(STEP_FUNCTIONS)


def step_call(step) -> tuple[str, tuple]:
    """(the study function's name, its arguments after spec and run_id) of a plan step, or of anything with
    the same kind, epoch and batch (an Airflow operator)."""
    name, fields = STEP_FUNCTIONS[step.kind]
    return name, tuple(getattr(step, f) for f in fields)


@dataclass(frozen=True)
class Step:
    """One step. ``task_id`` is unique in the plan; for TPE it is ``<group>.<name>`` (Airflow's TaskGroup id)."""

    task_id: str
    kind: str  # one of KINDS
    epoch: int | None  # 1..N for kind "epoch", else None
    upstream: tuple[str, ...]
    batch: int = 0  # TPE batch (0-based): the batch an epoch trains, or the batch a next_batch step closes
    group: str | None = None  # TaskGroup of a TPE batch, "batch_<batch + 1>"

    @property
    def name(self) -> str:
        """The id inside its group (the Airflow operator's own task_id)."""
        return self.task_id.rsplit(".", 1)[-1]


def epoch_task_id(epoch: int) -> str:
    return f"epoch_{epoch}"


def batch_group_id(batch: int) -> str:
    return f"batch_{batch + 1}"


def build_plan(spec: StudySpec) -> list[Step]:
    """Steps in execution order; each step depends on the one before it (a chain).

    N = ``spec.train.epochs`` epoch steps per batch. An adaptive search (tpe) has a group per batch; a trigger
    may not ask for more batches (see :func:`cerebro_ops.core.params.validate_overrides`).
    """
    steps = [Step("prepare", "prepare", None, ()), Step("partition", "partition", None, ("prepare",))]

    def add(task_id: str, kind: str, epoch: int | None = None, batch: int = 0, group: str | None = None) -> None:
        full = f"{group}.{task_id}" if group else task_id
        steps.append(Step(full, kind, epoch, (steps[-1].task_id,), batch, group))

    searcher = searcher_for(spec)
    if searcher.is_adaptive:
        batches = searcher.num_batches
        for b in range(batches):
            group = batch_group_id(b)
            for e in range(1, spec.train.epochs + 1):
                add(epoch_task_id(e), "epoch", e, b, group)
            if b < batches - 1:  # tell batch b's results, ask batch b + 1
                add("next_batch", "next_batch", None, b, group)
    else:
        for e in range(1, spec.train.epochs + 1):
            add(epoch_task_id(e), "epoch", e)
    add("select", "select")
    add("register", "register")
    return steps
