"""Whether a run's best config replaces the registered champion.

The challenger and the current champion are scored on the same rows, the run's raw validation rows less
those the champion trained on (:func:`comparison_rows`), each through its own encoding (the champion's comes
with its registered model), with the compiled metric in the label's units. The challenger is promoted when
it scores better, when there is no champion yet, or when the champion cannot be scored on these rows.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from cerebro_ops.core.errors import DataError
from cerebro_ops.core.spec import StudySpec
from cerebro_ops.mlflow.tracking import TRAIN_ROWS_COLUMNS_TAG

log = logging.getLogger("cerebro_ops.study")

ON_ROWS = "on this run's validation rows"


@dataclass(frozen=True)
class Verdict:
    current: dict | None      # the champion's registry entry (Tracker.champion), None when there is none
    challenger: float         # the challenger's metric on the compared rows
    champion: float | None    # the champion's, None when it could not be scored (or there is none)
    compared: int             # how many rows both were scored on
    promote: bool
    reason: str


def judge(tracker, spec: StudySpec, model, encoding, val_rows, run_id: str) -> Verdict:
    """The challenger `model` (with the run's `encoding`) against the current champion of the study."""
    columns = [encoding.label, *encoding.feature_columns]
    current = tracker.champion(spec.name)
    rows, on_rows = comparison_rows(tracker, current, val_rows, columns)
    challenger = metric_of(model, encoding, rows, spec.metric_key)
    champ, unusable = score_champion(tracker, current, rows, spec, run_id)
    if champ is not None and not better(challenger, champ, spec.train.direction):
        return Verdict(current, challenger, champ, len(rows), False,
                       f"not promoted: challenger {spec.train.metric} {challenger:.6g} does not beat "
                       f"{champ:.6g} of v{current['version']} {on_rows}")
    return Verdict(current, challenger, champ, len(rows), True,
                   promotion_reason(spec, challenger, champ, current, unusable, on_rows))


def comparison_rows(tracker, current: dict | None, val_rows, columns: list[str]):
    """(the validation rows challenger and champion are compared on, how they were chosen). Rows the champion
    trained on (by the content hashes its registration recorded) are left out: on them it would look better
    than it is. When it recorded none, or no row is left, all rows are used and the decision says so."""
    from cerebro_ops.core.row_hashes import unseen

    if current is None:
        return val_rows, ON_ROWS
    v = current["version"]
    recorded = (current.get("tags") or {}).get(TRAIN_ROWS_COLUMNS_TAG)
    seen = tracker.champion_train_rows(current) if recorded else None
    if seen is None:
        return val_rows, f"{ON_ROWS} (v{v} recorded no training rows: it may have trained on some of them)"
    if json.loads(recorded) != columns:
        return val_rows, f"{ON_ROWS} (v{v} trained on other columns: its training rows cannot be matched)"
    fresh = unseen(val_rows, columns, seen)
    if fresh.all():
        return val_rows, f"{ON_ROWS}, none of which v{v} trained on"
    if not fresh.any():
        return val_rows, f"{ON_ROWS} (v{v} trained on all {len(val_rows)} of them: the comparison favours it)"
    return val_rows[fresh].reset_index(drop=True), (f"on the {int(fresh.sum())} of this run's {len(val_rows)} "
                                                    f"validation rows that v{v} did not train on")


def model_description(spec: StudySpec) -> str:
    """The registered model's description: the study's, and how its champion is chosen."""
    how = (f"cerebro-ops study {spec.name}: the version behind alias 'champion' is the config with the best "
           f"{spec.train.metric} ({spec.train.direction}) that beat the previous champion on its run's validation "
           "rows the previous champion did not train on.")
    return f"{spec.description.strip()}\n\n{how}" if spec.description.strip() else how


def score_champion(tracker, current: dict | None, val_rows, spec: StudySpec, run_id: str):
    """(the current champion's metric on these raw rows through its own encoding, or None; why it could not
    be scored, or None). A champion that cannot score them is replaced.

    The champion is loaded as data only (its Keras file in safe mode and its encoding JSON, each checked against
    the sha256 recorded at its registration: champion_check.py), never as the pyfunc it is registered as:
    whoever can write the registry could point the alias at a model whose Python code would run here."""
    from cerebro_ops.keras.champion_check import UntrustedChampion

    if current is None:
        return None, None
    try:
        old = tracker.load_champion_data(current)
        return metric_of(old.keras_model, old.encoding, val_rows, spec.metric_key), None
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score these rows is replaced
        text = str(exc).splitlines()[0] if str(exc) else ""
        unusable = (text if isinstance(exc, UntrustedChampion) else f"{type(exc).__name__}: {text}")[:300]
        log.warning("champion v%s of %s could not be scored on run %s's validation rows (%s); it will be "
                    "replaced", current["version"], spec.name, run_id, unusable)
        return None, unusable


def promotion_reason(spec: StudySpec, challenger: float, champ: float | None, current: dict | None,
                     unusable: str | None, on_rows: str = ON_ROWS) -> str:
    """Why the challenger is promoted: no champion yet, it scores better, or the champion could not be scored."""
    metric = spec.train.metric
    if current is None:
        return f"promoted: no champion yet ({metric} {challenger:.6g} {on_rows})"
    if champ is None:  # which rows it would have been scored on does not matter then
        return (f"promoted: {metric} {challenger:.6g}; champion v{current['version']} could not be scored "
                f"{ON_ROWS} ({unusable})")
    sign = "<" if spec.train.direction == "min" else ">"
    return f"promoted: {metric} {challenger:.6g} {sign} {champ:.6g} of v{current['version']} {on_rows}"


def metric_of(model, encoding, rows, key: str) -> float:
    """The compiled metric `key` of `model` on raw `rows` (features and label), encoded by `encoding`."""
    from cerebro_ops.core.encoding import in_label_units, loss_name
    from cerebro_ops.keras.serving import keras_inputs
    from cerebro_ops.keras.train_loop import evaluate_metrics

    if encoding.label not in rows.columns:
        raise DataError(encoding.label, "the validation rows have no label column", "score rows with their label")
    x = keras_inputs(model, encoding.encode(rows), encoding.feature_spans)
    res = evaluate_metrics(model, x, encoding.encode_labels(rows[encoding.label]))
    res = in_label_units(res, encoding.label_stats["std"] if encoding.label_stats else None, loss_name(model))
    if key not in res:
        raise DataError("train.metric", f"model reports {sorted(res)}, not {key!r}", "pick one of those")
    return float(res[key])


def better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "min" else a > b
