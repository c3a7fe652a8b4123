"""The registered raw-rows pyfunc: pyfunc.load_model, `mlflow models serve` and spark_udf on the user's rows.

Column names with dots, spaces, unicode and a leading digit; a string label; a tmp sqlite tracking URI.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")
keras = pytest.importorskip("keras")

from mlflow.exceptions import MlflowException  # noqa: E402

from cerebro_ops.builders import mlp  # noqa: E402
from cerebro_ops.core.encoding import Encoding  # noqa: E402
from cerebro_ops.core.errors import DataError  # noqa: E402
from cerebro_ops.keras.serving import predict_keras  # noqa: E402
from cerebro_ops.core.spec import parse_spec  # noqa: E402
from cerebro_ops.mlflow.tracking import Tracker  # noqa: E402

LABEL = "species"
NUMERIC = ["Sepal.Length", "petal width"]
CATEGORICAL = ["größe", "2nd-col"]
CLASSES = ["setosa", "versicolor", "virginica"]
MODEL_NAME = "iris_raw"


def iris_like(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(CLASSES, n)
    shift = pd.Series(species).map({"setosa": 0.0, "versicolor": 1.0, "virginica": 2.0}).to_numpy()
    return pd.DataFrame({
        "Sepal.Length": rng.normal(5.0, 0.5, n) + shift,
        "petal width": rng.normal(1.0, 0.3, n) + shift / 2,
        "größe": rng.choice(["S", "M", "L", "XL"], n),  # XL is not among the categories: "other"
        "2nd-col": rng.choice([1, 2, 3], n).astype(np.int64),
        LABEL: species,
    })


def meta_for(train: pd.DataFrame) -> dict:
    """What the prepare step would write for these columns (stats of the train rows), with data.missing:
    impute and train rows that missed "petal width" and "größe" values (an indicator / a <missing> slot)."""
    return {
        "task": "multiclass", "label": LABEL, "numeric": NUMERIC, "categorical": CATEGORICAL, "arrays": {},
        "numeric_stats": {c: {"mean": float(train[c].mean()), "std": float(train[c].std(ddof=0)),
                              "fill": float(train[c].median())} for c in NUMERIC},
        "categories": {"größe": ["L", "M", "S"], "2nd-col": [1, 2, 3]},
        "label_classes": CLASSES, "num_classes": 3, "input_shape": [WIDTH],
        "feature_spans": {"Sepal.Length": [0, 1], "petal width": [1, 3], "größe": [3, 8], "2nd-col": [8, 12]},
        "raw_dtypes": {"Sepal.Length": "double", "petal width": "double", "größe": "string", "2nd-col": "long",
                       LABEL: "string"},
        "missing": "impute", "missing_indicators": ["petal width"], "missing_categories": ["größe"],
    }


WIDTH = 1 + 2 + 5 + 4  # Sepal.Length; petal width + its indicator; L, M, S, <missing>, <other>; 1, 2, 3, <other>


def with_gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as pandas.read_csv gives them from a file with gaps: NaN numbers, a missing category, and the
    integer column as floats (one of its values is missing)."""
    rows = rows.copy()
    rows.loc[[2, 7], "petal width"] = np.nan
    rows.loc[4, "größe"] = None
    rows["2nd-col"] = rows["2nd-col"].astype(float)
    rows.loc[5, "2nd-col"] = np.nan
    return rows


def study_spec(tmp_path, name: str):
    return parse_spec({"name": name, "data": {"source": str(tmp_path / "x.csv"), "label": LABEL, "numeric": NUMERIC},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny multiclass model trained one epoch on encoded rows, logged as raw-rows pyfunc and registered."""
    tmp = tmp_path_factory.mktemp("serving")
    train, rows = iris_like(120, 0), with_gaps(iris_like(25, 1))
    meta = meta_for(train)
    enc = Encoding.from_meta(meta)
    keras.utils.set_random_seed(0)
    model = mlp({"hidden_units": 8, "num_layers": 1, "learning_rate": 0.05},
                SimpleNamespace(input_shape=(WIDTH,), task="multiclass", num_classes=3))
    model.fit(enc.encode(train), enc.encode_labels(train[LABEL]), epochs=1, verbose=0)
    uri_db = f"sqlite:///{tmp}/mlflow.db"
    tracker = Tracker(uri_db, "serving")
    parent = tracker.start_study(study_spec(tmp, MODEL_NAME), "r1", {})
    child = tracker.start_config(parent, "c0", {"learning_rate": 0.05})
    model_uri = tracker.log_raw_rows_model(child, model, meta, rows.head(5))
    version = tracker.register_champion(MODEL_NAME, model_uri, "val_accuracy", 0.5, {}, reason="first")
    expected = enc.decode(model.predict(enc.encode(rows), verbose=0))
    return SimpleNamespace(tmp=tmp, tracking_uri=uri_db, tracker=tracker, meta=meta, enc=enc, model=model,
                           rows=rows, expected=expected, model_uri=model_uri, version=version, child=child)


def load(logged, uri=None):
    with logged.tracker.mlflow_context():
        return mlflow.pyfunc.load_model(uri or f"models:/{MODEL_NAME}@champion")


def test_pyfunc_scores_raw_rows_like_the_keras_model(logged):
    pyfunc = load(logged)
    with_label = pyfunc.predict(logged.rows)
    without_label = pyfunc.predict(logged.rows.drop(columns=[LABEL]))
    assert list(with_label.columns) == ["prediction", "probability_setosa", "probability_versicolor",
                                        "probability_virginica"]
    pd.testing.assert_frame_equal(with_label, logged.expected, check_exact=True)
    pd.testing.assert_frame_equal(without_label, logged.expected, check_exact=True)
    assert set(with_label["prediction"]) <= set(CLASSES)
    np.testing.assert_allclose(with_label.iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-5)
    # the column order of the rows does not matter
    shuffled = logged.rows[[LABEL, "2nd-col", "größe", "petal width", "Sepal.Length"]]
    pd.testing.assert_frame_equal(pyfunc.predict(shuffled), logged.expected)


def test_signature_input_example_and_requirements(logged):
    pyfunc = load(logged, logged.model_uri)
    sig = pyfunc.metadata.signature
    # every feature column, required, of any type: the encoding checks the values (see below)
    assert [(c.name, repr(c.type), c.required) for c in sig.inputs.inputs] == [
        ("Sepal.Length", "Any", True), ("petal width", "Any", True), ("größe", "Any", True),
        ("2nd-col", "Any", True)]
    assert [(c.name, c.type.name) for c in sig.outputs.inputs] == [
        ("prediction", "string"), ("probability_setosa", "double"), ("probability_versicolor", "double"),
        ("probability_virginica", "double")]
    assert pyfunc.metadata.metadata["cerebro.spark_result_type"] == logged.enc.spark_result_type()
    with logged.tracker.mlflow_context():
        local = Path(mlflow.artifacts.download_artifacts(logged.model_uri))
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == NUMERIC + CATEGORICAL  # the label is not part of the input
    assert len(example["data"]) == 5
    assert example["data"][0][2] == logged.rows["größe"][0]
    reqs = (local / "requirements.txt").read_text().split()
    import pandas
    import tensorflow

    assert f"pandas=={pandas.__version__}" in reqs and f"numpy=={np.__version__}" in reqs
    assert f"mlflow=={mlflow.__version__}" in reqs and f"keras=={keras.__version__}" in reqs
    assert any(r.startswith("tensorflow") and r.endswith(f"=={tensorflow.__version__}") for r in reqs)
    assert (local / "code" / "cerebro_ops" / "core" / "encoding.py").is_file()
    assert json.loads((local / "artifacts" / "encoding.json").read_text()) == logged.enc.to_dict()
    # the run's tag points at the logged model, and the model lives in the study's experiment
    client = logged.tracker.client
    assert client.get_run(logged.child).data.tags["cerebro.model_uri"] == logged.model_uri
    assert (client.get_logged_model(logged.model_uri.split("/")[-1]).experiment_id
            == client.get_run(logged.child).info.experiment_id)


def test_users_column_types_are_answered(logged):
    """The types pandas gives a user are answered as the same values: ints in a double column, floats (with
    a gap) in an integer column, int32; a missing column is an error naming it."""
    pyfunc = load(logged)
    rows = logged.rows.drop(columns=[LABEL])

    def expected(r):
        return logged.enc.decode(logged.model.predict(logged.enc.encode(r), verbose=0))

    as_int = rows.assign(**{"Sepal.Length": rows["Sepal.Length"].round().astype(np.int64)})
    pd.testing.assert_frame_equal(pyfunc.predict(as_int), expected(as_int.astype({"Sepal.Length": np.float64})))
    complete = rows.assign(**{"2nd-col": rows["2nd-col"].fillna(1)})
    pd.testing.assert_frame_equal(pyfunc.predict(complete.astype({"2nd-col": np.int32})),
                                  pyfunc.predict(complete))
    pd.testing.assert_frame_equal(pyfunc.predict(complete), expected(complete))
    with pytest.raises(MlflowException, match="größe"):
        pyfunc.predict(rows.drop(columns=["größe"]))


def test_missing_values_are_imputed_and_non_numbers_refused(logged):
    pyfunc = load(logged)
    rows = logged.rows.copy()
    got = pyfunc.predict(rows)
    assert got["prediction"].notna().all() and len(got) == len(rows)
    x = logged.enc.encode(rows)
    fill = logged.meta["numeric_stats"]["petal width"]
    np.testing.assert_allclose(x[[2, 7], 1], np.float32((fill["fill"] - fill["mean"]) / fill["std"]))
    assert x[[2, 7], 2].tolist() == [1.0, 1.0] and x[0, 2] == 0.0  # the indicator
    assert x[4, 3:8].tolist() == [0, 0, 0, 1, 0] and x[5, 8:12].tolist() == [0, 0, 0, 1]  # <missing>, <other>
    rows.loc[3, "petal width"] = "abc"
    with pytest.raises(DataError) as err:
        pyfunc.predict(rows)
    assert err.value.field == "petal width" and "row 3" in err.value.problem and "'abc'" in err.value.problem
    assert isinstance(err.value, MlflowException)  # so that the scoring server answers 400 with this message
    assert err.value.get_http_status_code() == 400


def test_load_champion_gives_keras_model_and_encoding(logged):
    champ = logged.tracker.load_champion_data(logged.tracker.champion(MODEL_NAME))
    assert champ.encoding == logged.enc
    x = champ.encoding.encode(logged.rows)
    np.testing.assert_array_equal(champ.keras_model.predict(x, verbose=0), logged.model.predict(x, verbose=0))
    y = champ.encoding.encode_labels(logged.rows[LABEL])
    got = champ.keras_model.evaluate(x, y, verbose=0, return_dict=True)
    assert got == pytest.approx(logged.model.evaluate(x, y, verbose=0, return_dict=True))
    assert "accuracy" in got  # the compiled metric survives the round trip


def test_binary_bool_label_and_array_column(logged, tmp_path):
    """A boolean label comes back as booleans; an array column is a list in the signature."""
    rng = np.random.default_rng(3)
    n = 40
    vec = rng.normal(size=(n, 3))
    rows = pd.DataFrame({"x y": rng.normal(size=n), "vec": list(vec), "ok": vec[:, 0] > 0})
    meta = {"task": "binary", "label": "ok", "numeric": ["x y"], "categorical": [], "arrays": {"vec": [3]},
            "numeric_stats": {"x y": {"mean": 0.0, "std": 1.0}}, "categories": {}, "label_classes": [False, True],
            "num_classes": 2, "input_shape": [4], "raw_dtypes": {"x y": "double", "vec": "array", "ok": "boolean"}}
    enc = Encoding.from_meta(meta)
    keras.utils.set_random_seed(1)
    model = mlp({"hidden_units": 4, "num_layers": 1}, SimpleNamespace(input_shape=(4,), task="binary", num_classes=2))
    model.fit(enc.encode(rows), enc.encode_labels(rows["ok"]), epochs=1, verbose=0)
    tracker = Tracker(logged.tracking_uri, "binary")
    parent = tracker.start_study(study_spec(tmp_path, "flags"), "r1", {})
    uri = tracker.log_raw_rows_model(tracker.start_config(parent, "c0", {}), model, meta, rows.head(5))
    with tracker.mlflow_context():
        pyfunc = mlflow.pyfunc.load_model(uri)
    sig = pyfunc.metadata.signature
    assert [(c.name, repr(c.type)) for c in sig.inputs.inputs] == [("x y", "Any"), ("vec", "Any")]
    assert [(c.name, c.type.name) for c in sig.outputs.inputs] == [("prediction", "boolean"), ("probability", "double")]
    out = pyfunc.predict(rows.assign(vec=[v.tolist() for v in vec]))
    want = enc.decode(predict_keras(model, enc.encode(rows), enc.feature_spans))
    pd.testing.assert_frame_equal(out, want)
    assert out["prediction"].dtype == bool
    np.testing.assert_array_equal(out["prediction"], out["probability"] > 0.5)


def test_predictions_in_batches_equal_keras_predict(logged, monkeypatch):
    """predict_keras calls predict_on_batch per PREDICT_BATCH rows (no tf.data pipeline per call); the rows of
    every batch, the last short one too, come back in order and as Keras's predict gives them."""
    from cerebro_ops.keras import serving

    monkeypatch.setattr(serving, "PREDICT_BATCH", 7)  # 25 rows: batches of 7, 7, 7 and 4
    model, x = logged.model, logged.enc.encode(logged.rows)
    sizes = []
    real = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch", lambda batch: sizes.append(len(batch)) or real(batch))
    got = predict_keras(model, x, logged.enc.feature_spans)
    assert sizes == [7, 7, 7, 4]
    np.testing.assert_array_equal(got, model.predict(x, verbose=0))
    assert predict_keras(model, x[:0], logged.enc.feature_spans).shape == (0, 1)


def test_model_with_one_input_per_column(logged):
    """Named inputs (the columns' own names, dots and all) get their columns' slices, as in training."""
    from cerebro_ops.keras.trainer import model_inputs

    enc = logged.enc
    keras.utils.set_random_seed(2)
    inputs = {c: keras.Input(shape=(end - start,), name=c) for c, (start, end) in enc.feature_spans.items()}
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Concatenate()(list(inputs.values())))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = enc.encode(logged.rows)
    model.fit(model_inputs(model, x, enc.feature_spans), enc.encode_labels(logged.rows[LABEL]), epochs=1, verbose=0)
    tracker = logged.tracker
    parent = tracker.start_study(study_spec(logged.tmp, "named"), "r-named", {})
    uri = tracker.log_raw_rows_model(tracker.start_config(parent, "c0", {}), model, logged.meta, logged.rows.head(5))
    with tracker.mlflow_context():
        out = mlflow.pyfunc.load_model(uri).predict(logged.rows)
    want = enc.decode(model.predict({c: x[:, a:b] for c, (a, b) in enc.feature_spans.items()}, verbose=0))
    pd.testing.assert_frame_equal(out, want)


# ------------------------------------------------------------------------------------------ outside the process

def _clean_env(logged) -> dict:
    """No PYTHONPATH: the model must bring its own copy of cerebro_ops."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # as in an activated venv: `mlflow models serve` runs `uvicorn` from PATH
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(MLFLOW_TRACKING_URI=logged.tracking_uri, TF_CPP_MIN_LOG_LEVEL="2")
    return env


@pytest.mark.slow
def test_loads_from_its_own_code_copy(logged, tmp_path):
    script = ("import json, sys, mlflow, pandas as pd\n"
              f"m = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@champion')\n"
              "out = m.predict(pd.read_json(sys.argv[1], orient='split'))\n"
              "import cerebro_ops\n"
              "print(json.dumps({'file': cerebro_ops.__file__, 'pred': out['prediction'].tolist()}))\n")
    rows = tmp_path / "rows.json"
    logged.rows.to_json(rows, orient="split", index=False)
    proc = subprocess.run([sys.executable, "-c", script, str(rows)], cwd=tmp_path, env=_clean_env(logged),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["pred"] == logged.expected["prediction"].tolist()
    assert "/code/cerebro_ops/" in got["file"] and not got["file"].startswith(str(Path(__file__).parents[2]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.slow
def test_mlflow_models_serve_answers_raw_rows(logged, tmp_path):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion",
                             "--env-manager", "local", "-p", str(port), "--host", "127.0.0.1"],
                            cwd=tmp_path, env=_clean_env(logged), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if _http(f"{base}/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the scoring server did not answer /ping in 180 s"
            time.sleep(1)
        records = json.loads(logged.rows.to_json(orient="records"))  # the label is there and ignored
        records[0]["Sepal.Length"] = round(records[0]["Sepal.Length"])  # a JSON int for a double column
        status, body = _http(f"{base}/invocations", json.dumps({"dataframe_records": records}).encode())
        assert status == 200, body[:2000]
        got = pd.DataFrame(json.loads(body)["predictions"])
        rows = logged.rows.copy()
        rows.loc[0, "Sepal.Length"] = float(records[0]["Sepal.Length"])
        want = logged.enc.decode(logged.model.predict(logged.enc.encode(rows), verbose=0))
        assert got["prediction"].tolist() == want["prediction"].tolist()
        np.testing.assert_allclose(got.drop(columns="prediction").to_numpy(),
                                   want.drop(columns="prediction").to_numpy(), rtol=1e-6)
        assert got["prediction"].notna().all() and logged.rows["petal width"].isna().any()  # gaps answered
        # a row the encoding refuses is a 400 whose message names the column, the row and the fix
        records[1]["petal width"] = "abc"
        status, body = _http(f"{base}/invocations", json.dumps({"dataframe_records": records}).encode())
        assert status == 400, body[:2000]
        assert json.loads(body)["message"].endswith(
            "data 'petal width': row 1 holds 'abc', which is not a number. Fix: send a number (or true/false, or "
            "nothing for a missing value) in column 'petal width'")
    finally:
        _kill_group(proc)
        log.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """The server and the uvicorn worker it started (its own session, so its own process group)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.spark
def test_spark_udf_on_raw_rows_with_odd_column_names(logged):
    from pyspark.sql import functions as F

    from cerebro_ops.spark.session import get_spark

    spark = get_spark("local[2]")
    sdf = spark.createDataFrame(logged.rows.assign(row=range(len(logged.rows))))
    with logged.tracker.mlflow_context():
        uri = f"models:/{MODEL_NAME}@champion"
        result_type = mlflow.models.get_model_info(uri).metadata["cerebro.spark_result_type"]
        predict = mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local")
    # Dotted names must be quoted, or Spark reads them as struct fields; a struct keeps every column's name
    # (the label and the row id ride along and are ignored).
    cols = F.struct(*[F.col(f"`{c}`") for c in logged.rows.columns])
    out = sdf.select("row", predict(cols).alias("p")).select("row", "p.*").orderBy("row").toPandas()
    assert out["prediction"].tolist() == logged.expected["prediction"].tolist()
    np.testing.assert_allclose(out[logged.expected.columns[1:]].to_numpy(),
                               logged.expected.iloc[:, 1:].to_numpy(), rtol=1e-6)
