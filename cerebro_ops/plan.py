"""The neutral step graph of one study run: prepare → partition → epoch_1..N → select → register.

Pure (no Airflow, Spark or TensorFlow). The Airflow DAG factory and the CLI both walk this plan, so the
two can never disagree about order or dependencies.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import StudySpec

KINDS = ("prepare", "partition", "epoch", "select", "register")


@dataclass(frozen=True)
class Step:
    task_id: str
    kind: str  # one of KINDS
    epoch: int | None
    upstream: tuple[str, ...]


def epoch_task_id(epoch: int) -> str:
    return f"epoch_{epoch}"


def build_plan(spec: StudySpec) -> list[Step]:
    """Steps in execution order; each step depends on the one before it (a chain).

    N = ``spec.train.epochs`` is the DAG's maximum; a run triggered with fewer epochs (Param) turns the
    extra epoch steps into no-ops inside ``study.run_epoch``.
    """
    steps = [Step("prepare", "prepare", None, ()), Step("partition", "partition", None, ("prepare",))]
    prev = "partition"
    for e in range(1, spec.train.epochs + 1):
        tid = epoch_task_id(e)
        steps.append(Step(tid, "epoch", e, (prev,)))
        prev = tid
    steps.append(Step("select", "select", None, (prev,)))
    steps.append(Step("register", "register", None, ("select",)))
    return steps
