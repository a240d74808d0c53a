"""Every user mistake is refused the same way, before anything is recorded.

One table of user-input cases (bad config values, bad data files, bad outputs, a tracking
store that is not there or is locked, bad arguments of every subcommand), each run in
process through `python -m logistic_regression` (`__main__.main`). Each must end with
exactly one line on stderr that is neither a bug report ("unexpected") nor a traceback,
exit code 2, and no run in the tracking store. A case that breaks any of these is a bug
in the kit: fix the kit, not the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import last_json_line, returns_within
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from logistic_regression import __main__ as kit
from logistic_regression import cli

ROWS = 40


def _table(path: Path, **columns) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=ROWS), "label": np.tile([0, 1], ROWS // 2)})
    for name, values in columns.items():
        frame[name] = values
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _with(values, index, value):
    values = np.array(values, dtype=object)
    values[index] = value
    return values


def key(name: str) -> str:
    """How the cases below name a file: `{inf_csv}` for inf.csv."""
    return name.replace(".", "_")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, str]:
    """One file per kind of bad input, by `key` (read only by the cases)."""
    folder = tmp_path_factory.mktemp("inputs")
    normal = np.random.default_rng(1).normal(size=ROWS)
    files: dict[str, str] = {}

    def write(name: str, **columns) -> None:
        files[key(name)] = str(folder / name)
        _table(folder / name, **columns)

    write("inf.csv", x2=_with(normal, 3, np.inf))
    write("minus_inf.parquet", x2=_with(normal, 5, -np.inf).astype(float))
    write("huge.csv", x2=np.tile([1.7e308, -1.7e308], ROWS // 2))
    write("continuous_target.csv", y=np.linspace(0.05, 3.95, ROWS))
    write("one_class.csv", y=np.zeros(ROWS, dtype=int))
    write("three_classes.csv", y=np.tile(["cat", "dog", "eel", "eel"], ROWS // 4))
    write("rare_class.csv", y=np.array(["cat", "dog"] * 18 + ["eel"] * 4))
    write("lone_class.csv", y=np.array(["cat", "dog"] * 19 + ["eel", "cat"]))
    write("missing_label.csv", y=_with(np.array(["cat", "dog"] * (ROWS // 2)), 3, None))
    overflow = folder / "overflow.csv"  # 1e400 is beyond float64: pandas reads inf
    overflow.write_text(
        "x1,label\n" + "".join(f"{'1e400' if i == 7 else i},{i % 2}\n" for i in range(ROWS))
    )
    files[key("overflow.csv")] = str(overflow)
    for name, text in {
        "header_only.csv": "x1,x2,label\n",
        "empty.csv": "",
        "tiny.csv": "x1,label\n1,0\n2,1\n3,0\n4,1\n",
        "repeated_name.csv": "x1,x1,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(ROWS)),
        "only_target.csv": "label\n0\n1\n0\n1\n",
        "notes.txt": "a,b\n",
        "nan_metric.csv": "C,acc\nparameter,metric\n1,nan\n",
        "error_metric.csv": "C,acc\nparameter,metric\n1,#DIV/0!\n",
    }.items():
        (folder / name).write_text(text)
        files[key(name)] = str(folder / name)
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    (folder / "broken.csv.gz").write_bytes(b"not gzip at all")
    (folder / "shift_jis.csv").write_bytes(
        ("x1,色,label\n" + "".join(f"{i},{'赤青'[i % 2]},{i % 2}\n" for i in range(ROWS))).encode(
            "cp932"
        )
    )
    (folder / "semicolon.csv").write_text(
        "x1;label\n" + "".join(f"{i},5;{i % 2}\n" for i in range(ROWS))
    )
    pd.DataFrame({"x1": range(ROWS), "label": [0, 1] * (ROWS // 2)}).to_excel(
        folder / "book.xlsx", sheet_name="one", index=False
    )
    for name in ("broken.csv.gz", "shift_jis.csv", "semicolon.csv", "book.xlsx"):
        files[key(name)] = str(folder / name)
    files[key("broken.parquet")] = str(folder / "broken.parquet")
    (folder / "a_file").write_text("not a folder")
    files["a_file"] = str(folder / "a_file")
    (folder / "folder.csv").mkdir()  # paths that are not files to read
    os.mkfifo(folder / "pipe.csv")
    (folder / "loop.csv").symlink_to(folder / "loop.csv")
    (folder / "dangling.csv").symlink_to(folder / "gone.csv")
    for name in ("folder.csv", "pipe.csv", "loop.csv", "dangling.csv"):
        files[key(name)] = str(folder / name)
    return files


@contextlib.contextmanager
def locked(uri: str):
    """Another connection holding the SQLite store in an exclusive lock."""
    holder = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


T = ["train"]
D = [*T, "data.target=label"]  # the bad files' label column
FAST = "tracking.timeout_s=1"

# (id, arguments of `python -m logistic_regression`, what the line must name). Arguments
# may name {file} from bad_files, {port} (closed), {silent} (a server that never answers).
CASES = [
    # configuration values
    ("seed-negative", [*T, "seed=-1"], "seed=-1"),
    ("seed-too-large", [*T, f"seed={2**32}"], f"seed={2**32}"),
    ("seed-text", [*T, "seed=abc"], "seed"),
    ("C-negative", [*T, "model.C=-1"], "model.C=-1.0"),
    ("C-nan", [*T, "model.C=nan"], "model.C=nan"),
    ("C-infinite", [*T, "model.C=1e400"], "model.C=inf is not allowed; C must be a finite"),
    ("C-text", [*T, "model.C=abc"], "model.C"),
    ("unknown-key", [*T, "model.bogus=1"], "bogus"),
    # `+key=value` adds a key Hydra accepts and the kit would ignore: a typo, silently
    ("added-typo", [*T, "+model.c=0.01"], "model.c is not a setting; did you mean model.C?"),
    (
        "added-nested-typo",
        [*T, "+storage.retry.max_attempt=3"],
        "did you mean storage.retry.max_attempts?",
    ),
    ("added-key", [*T, "+foo=1"], "foo is not a setting"),
    ("removed-section", [*T, "~model"], "~model: removing a setting is not allowed"),
    ("removed-key", [*T, "~model.C"], "~model.C: removing a setting is not allowed"),
    ("not-an-override", [*T, "model.C"], "model.C"),
    ("solver-penalty", [*T, "model.penalty=l1"], "cannot fit"),
    ("folds", [*T, "evaluation.cv_folds=1"], "evaluation.cv_folds=1"),
    ("test-size", [*T, "evaluation.test_size=1.5"], "evaluation.test_size=1.5"),
    ("headline", [*T, "evaluation.headline_metric=mse"], "headline_metric"),
    # several values where one is expected: a sweep, and how to run one
    ("several-values", [*T, "model.C=0.1,1"], "several values are a sweep; run them with -m"),
    (
        "target-case",
        [*T, "data.input={inf_csv}", "data.target=LABEL"],
        "did you mean data.target='label'?",
    ),
    (
        "lone-class",
        [*T, "data.input={lone_class_csv}", "data.target=y"],
        "('eel') has 1 row, so each fold",
    ),
    (
        "missing-labels",
        [*T, "data.input={missing_label_csv}", "data.target=y"],
        "1 missing value (of 40 rows); a row without a label",
    ),
    ("input-folder", [*T, "data.input={folder_csv}"], "is a folder, not a file"),
    ("input-pipe", [*T, "data.input={pipe_csv}"], "is a named pipe, not a file"),
    (
        "input-loop",
        [*T, "data.input={loop_csv}"],
        "cannot be followed (Too many levels of symbolic",
    ),
    ("input-dangling", [*T, "data.input={dangling_csv}"], "is a link to a missing file"),
    # a count of test rows smaller than the classes (three here)
    (
        "test-size-count",
        [*D, "data.input={three_classes_csv}", "evaluation.test_size=2"],
        "evaluation.test_size=2",
    ),
    # names with / and = unquoted: Hydra's grammar error, with how to quote them
    (
        "unquoted-names",
        [*T, "preprocessing.drop_columns=[p/q,x=y]"],
        "preprocessing.drop_columns=['p/q','x=y']",
    ),
    ("timeout-zero", [*T, "tracking.timeout_s=0"], "tracking.timeout_s=0"),
    ("timeout-inf", [*T, "tracking.timeout_s=inf"], "tracking.timeout_s=inf"),
    ("empty-experiment", [*T, "tracking.experiment_name="], "experiment_name"),
    ("note-too-long", [*T, "tracking.note=" + "n" * 8001], "tracking.note has 8001 characters"),
    ("storage-kind", [*T, "storage.kind=ftp"], "storage.kind"),
    ("webhook", [*T, "notify.webhook_url=ftp://hook"], "webhook_url"),
    # data files
    ("feature-inf", [*D, "data.input={inf_csv}"], "'x2'"),
    ("column-repeated", [*D, "data.input={repeated_name_csv}"], "name 'x1' appears more than"),
    ("feature-minus-inf", [*D, "data.input={minus_inf_parquet}"], "-inf"),
    ("feature-overflows", [*D, "data.input={overflow_csv}"], "'x1'"),
    ("feature-huge", [*D, "data.input={huge_csv}"], "overflows"),
    (
        "target-continuous",
        [*T, "data.input={continuous_target_csv}", "data.target=y"],
        "continuous",
    ),
    ("target-one-class", [*T, "data.input={one_class_csv}", "data.target=y"], "single class"),
    ("target-rare-class", [*T, "data.input={rare_class_csv}", "data.target=y"], "('eel') has 4"),
    ("positive-label", [*D, "data.input={tiny_csv}", "data.positive_label=2"], "labels are: 0, 1"),
    (
        "headline-multiclass",
        [*T, "data.input={three_classes_csv}", "data.target=y", "evaluation.headline_metric=f1"],
        "(multiclass target)='f1'",
    ),
    (
        "liblinear-multiclass",
        [*T, "data.input={three_classes_csv}", "data.target=y", "model.solver=liblinear"],
        "multinomial",
    ),
    ("target-missing", [*T, "data.input={inf_csv}", "data.target=nope"], "'nope'"),
    ("drop-unknown", [*D, "data.input={inf_csv}", "preprocessing.drop_columns=[nope]"], "nope"),
    ("header-only", [*D, "data.input={header_only_csv}"], "no rows"),
    ("empty-file", [*D, "data.input={empty_csv}"], "could not be read"),
    ("too-few-rows", [*D, "data.input={tiny_csv}"], "needs more rows"),
    ("no-features", [*D, "data.input={only_target_csv}"], "no feature columns"),
    ("broken-parquet", [*D, "data.input={broken_parquet}"], "could not be read"),
    ("no-such-file", [*T, "data.input=missing.csv"], "no such file"),
    ("broken-gzip", [*D, "data.input={broken_csv_gz}"], "could not be read"),
    ("compressed-parquet", [*T, "data.input=t.parquet.gz"], "not supported"),
    # how a file is written: encoding, separators, sheets
    ("encoding-wrong", [*D, "data.input={shift_jis_csv}"], "cp932 (Shift_JIS"),
    ("encoding-unknown", [*T, "data.encoding=klingon"], "data.encoding='klingon' is not allowed"),
    ("encoding-not-text", [*T, "data.encoding=base64"], "data.encoding='base64' is not allowed"),
    ("separator-semicolon", [*D, "data.input={semicolon_csv}"], "data.decimal=','"),
    ("separator-long", [*T, "data.sep=';;'"], "data.sep=';;' is not allowed"),
    ("decimal-is-separator", [*T, "data.sep=';'", "data.decimal=';'"], "data.decimal=';'"),
    ("sheet-of-a-csv", [*D, "data.input={inf_csv}", "data.sheet=one"], "only an .xlsx input has"),
    ("sheet-missing", [*D, "data.input={book_xlsx}", "data.sheet=two"], "its sheets are: one"),
    ("unquoted-japanese", [*T, "data.target=ラベル"], "\"data.target='ラベル'\""),
    ("unsupported-input", [*T, "data.input=ftp://host/t.csv"], "not supported"),
    ("unknown-dataset", [*T, "data.input=titanic"], "not supported"),
    # outputs
    ("output-uncreatable", [*T, "data.output=/proc/kit-output"], "/proc/kit-output"),
    ("output-under-a-file", [*T, "data.output={a_file}/sub"], "a_file"),
    ("output-is-a-file", [*T, "data.output={a_file}"], "is a file"),
    ("output-scheme", [*T, "data.output=ftp://host/out"], "not supported"),
    # the tracking store (redacted; bounded)
    ("store-closed", [*T], "http://***@127.0.0.1:{port}"),
    ("store-silent", [*T, FAST], "no answer within 1 s"),
    ("store-locked", [*T, FAST], "is locked"),
    ("store-uncreatable", [*T], "/proc/kit/mlflow.db"),
    ("store-not-a-database", [*T], "not a database"),
    ("store-scheme", [*T], "foo:// is not a kind of tracking store MLflow knows"),
    ("store-files", [*T], "only opens with MLFLOW_ALLOW_FILE_STORE=true"),
    # Hydra's command line and sweeps
    ("train-flag", [*T, "--bogus"], "--bogus"),
    ("train-cfg", [*T, "--cfg", "jobx"], "jobx"),
    ("train-two-modes", [*T, "-m", "--info"], "only one of"),
    ("multirun-type", [*T, "-m", "model.C=abc,1"], "model.C"),
    ("multirun-fixed", [*T, "-m", "model.C=1,2", "seed=-1"], "seed=-1"),
    ("multirun-all-bad", [*T, "-m", "model.C=-1,-2"], "model.C=-1.0"),
    ("multirun-locked", [*T, "-m", "model.C=1,2", FAST], "is locked"),
    ("sweep-type", ["sweep", "model.C=abc"], "model.C"),
    ("sweep-fixed", ["sweep", "model.C=1,2 seed=-1"], "seed=-1"),
    ("sweep-unknown", ["sweep", "model.C=1,2 model.bogus=3,4"], "bogus"),
    ("sweep-added-typo", ["sweep", "model.C=1,2 +model.c=0.01"], "did you mean model.C?"),
    ("sweep-removed", ["sweep", "model.C=1,2 ~model.penalty"], "removing a setting"),
    ("sweep-cfg", ["sweep", "model.C=1,2", "--cfg", "job"], "only one of"),
    # the other subcommands
    ("no-command", [], "required"),
    ("unknown-command", ["bogus"], "'bogus'"),
    ("reproduce-no-id", ["reproduce"], "run_id"),
    ("reproduce-unknown", ["reproduce", "nope"], "'nope'"),
    ("reproduce-tolerance-text", ["reproduce", "x", "--tolerance", "abc"], "'abc'"),
    ("reproduce-tolerance-negative", ["reproduce", "x", "--tolerance", "-1"], "--tolerance"),
    ("reproduce-tolerance-nan", ["reproduce", "x", "--tolerance", "nan"], "--tolerance=nan"),
    ("reproduce-store-closed", ["reproduce", "x", "--tracking-uri", "{closed}"], "{port}"),
    ("inspect-nothing", ["inspect"], "RUN_ID"),
    ("inspect-unknown", ["inspect", "nope"], "'nope'"),
    ("inspect-experiment", ["inspect", "--experiment", "nope"], "'nope'"),
    ("inspect-scheme", ["inspect", "x", "--tracking-uri", "ftp://host/x"], "ftp://host/x"),
    ("inspect-store-closed", ["inspect", "x", "--tracking-uri", "{closed}"], "{port}"),
    ("inspect-store-path", ["inspect", "x", "--tracking-uri", "sqlite:////proc/k/m.db"], "/proc"),
    ("baseline-no-id", ["baseline"], "run_id"),
    ("baseline-unknown", ["baseline", "nope"], "'nope'"),
    ("baseline-store-closed", ["baseline", "x", "--tracking-uri", "{closed}"], "{port}"),
    ("import-no-file", ["import"], "file"),
    ("import-missing", ["import", "missing.csv"], "no such file"),
    ("import-suffix", ["import", "{notes_txt}"], "not supported"),
    ("import-nan", ["import", "{nan_metric_csv}"], "row 3, column 'acc'"),
    ("import-formula-error", ["import", "{error_metric_csv}"], "formula error"),
    ("import-store-closed", ["import", "{nan_metric_csv}", "--tracking-uri", "{closed}"], "{port}"),
    ("best-top-zero", ["best", "--top", "0"], "--top=0"),
    ("best-top-text", ["best", "--top", "abc"], "'abc'"),
    ("best-top-huge", ["best", "--experiment", "Default", "--top", "1000000"], "--top=1000000"),
    ("best-filter", ["best", "--experiment", "Default", "--filter", "garbage"], "garbage"),
    ("best-metric", ["best", "--metric", "a'b"], "--metric"),
    ("best-experiment", ["best", "--experiment", "nope"], "'nope'"),
    ("best-store-closed", ["best", "--tracking-uri", "{closed}"], "{port}"),
    ("sync-unknown-key", ["sync", "bogus=1"], "bogus"),
    ("sync-bad-value", ["sync", "storage.kind=ftp"], "storage.kind"),
]

# Cases that change the environment: the tracking store they run against.
STORES = {
    "store-closed": "http://user:canary-secret@127.0.0.1:{port}",
    "store-silent": "{silent}",
    "store-uncreatable": "sqlite:////proc/kit/mlflow.db",
    "store-not-a-database": "sqlite:///{inf_csv}",
    "store-scheme": "foo://user:canary-secret@127.0.0.1/x",
    "store-files": "kit-files-store",
}
LOCKED = {"store-locked", "multirun-locked"}


def all_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    return client.search_runs(
        [e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=1000
    )


@pytest.mark.parametrize(("name", "args", "named"), CASES, ids=[case[0] for case in CASES])
def test_a_user_mistake_is_one_line_exit_2_and_no_run(
    name, args, named, bad_files, isolated_mlflow, closed_port, silent_server, monkeypatch, capsys
):
    places = {
        **bad_files,
        "port": str(closed_port),
        "closed": f"http://127.0.0.1:{closed_port}",
        "silent": silent_server,
    }
    args = [arg.format(**places) for arg in args]
    named = named.format(**places)
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # Hydra's command line sets it
    if name in STORES:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", STORES[name].format(**places))
    capsys.readouterr()

    with locked(isolated_mlflow) if name in LOCKED else contextlib.nullcontext():
        code = returns_within(120, kit.main, args)
    err = capsys.readouterr().err

    assert "unexpected" not in err and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert named in err, err
    assert "canary-secret" not in err
    assert code == 2, err
    assert all_runs(isolated_mlflow) == [], f"{name} created a run"


def test_an_output_folder_that_can_be_made_is_made_and_accepted(tmp_path):
    from logistic_regression import outputs

    folder = tmp_path / "new" / "outputs"
    outputs.check_destination(str(folder))
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone


REFUSED_IN_A_FRESH_PROCESS = """
import json, sys
from logistic_regression import train
found = []
for args in json.loads(sys.argv[1]):
    code = train.main(args)
    heavy = [name for name in ("mlflow", "sklearn", "matplotlib") if name in sys.modules]
    found.append({"code": code, "imported": heavy})
print(json.dumps(found))
"""

# In this order: a bad value imports nothing heavy; a bad path needs the data module.
MISTAKES_BEFORE_ANY_WORK = [
    (["model.C=-1"], "model.C=-1.0 is not allowed", []),
    (["model.penalty=bogus"], "model.penalty", []),
    (["data.input=nope.csv"], "data.input='nope.csv': no such file", None),
]


def test_a_mistake_is_refused_before_the_work_it_would_waste(tmp_path, monkeypatch):
    """Not only one line: no tracking store opened (no mlflow.db made where the user
    stands) and, for a bad value, not even MLflow or scikit-learn imported. One fresh
    interpreter for the three (each costs seconds of imports)."""
    where_the_user_stands = tmp_path / "work"
    where_the_user_stands.mkdir()
    monkeypatch.chdir(where_the_user_stands)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cases = json.dumps([args for args, _, _ in MISTAKES_BEFORE_ANY_WORK])
    found, err = last_json_line(tmp_path / "refuse.py", REFUSED_IN_A_FRESH_PROCESS, cases)
    lines = err.splitlines()
    assert len(lines) == len(MISTAKES_BEFORE_ANY_WORK), err
    for (args, named, heavy), result, line in zip(
        MISTAKES_BEFORE_ANY_WORK, found, lines, strict=True
    ):
        assert result["code"] == 2 and line.startswith("error: ") and named in line, (args, err)
        if heavy is not None:
            assert result["imported"] == heavy, args
    assert list(where_the_user_stands.iterdir()) == []


def test_an_empty_tracking_uri_is_refused_naming_the_default(monkeypatch):
    from logistic_regression.errors import StorageError
    from logistic_regression.tracking.store import check

    with pytest.raises(StorageError, match="tracking.uri is empty .*sqlite:///mlflow.db"):
        check("", timeout_s=1)
