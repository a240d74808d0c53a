"""`tree mlruns` and MLflow's two local layouts: the embedded default (SQLite, its
artifacts under ./mlruns) and a file store (a folder of meta.yaml, params/, metrics/).
The kit never mixes them in one folder: mixed, MLflow reports "Malformed experiment" and
refuses every later run there."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from logistic_regression import train


def one_line_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_file_store_gets_its_own_folder_and_never_the_defaults_mlruns(
    tmp_path, monkeypatch, capsys
):
    assert train.main([]) == 0  # the embedded default: mlflow.db, artifacts in ./mlruns
    (report,) = Path("mlruns").glob("*/*/artifacts/report.html")

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with monkeypatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", "./mlruns")
        capsys.readouterr()
        assert train.main([]) == 2
        line = one_line_error(capsys)
    assert "./mlruns holds the artifacts of a SQLite store" in line and "mlruns-files" in line
    assert not list(Path("mlruns").glob("*/meta.yaml"))  # nothing of a file store written

    with monkeypatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", "./mlruns-files")
        assert train.main([]) == 0
    (params,) = Path("mlruns-files").glob("*/*/params")
    assert (params / "model.C").read_text() == "1.0"

    assert train.main([]) == 0  # the embedded default still works in the same folder
    assert len(list(Path("mlruns").glob("*/*/artifacts/report.html"))) == 2
    assert report.exists()


def test_the_embedded_default_refuses_a_file_store_in_mlruns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with monkeypatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", "./mlruns")
        assert train.main([]) == 0
    capsys.readouterr()
    assert train.main([]) == 2
    assert "./mlruns here is an MLflow file store" in one_line_error(capsys)
    assert MlflowClient().search_runs(search_all_experiments_ids()) == []  # refused before


def search_all_experiments_ids() -> list[str]:
    return [e.experiment_id for e in MlflowClient().search_experiments()]


def test_mlruns_being_a_file_is_refused_before_the_run(isolated_mlflow, capsys):
    """The run used to train, then end with `artifacts not stored: 13 of 13 files are
    kept` and a NotADirectoryError: the artifact root cannot be a folder, known at once."""
    Path("mlruns").write_text("not a folder")
    capsys.readouterr()
    assert train.main([]) == 2
    line = one_line_error(capsys)
    assert line == (
        "error: ./mlruns here is a file, where the SQLite store keeps its artifacts (MLflow's "
        "default artifact root, a folder); move or rename it"
    )
    client = MlflowClient(isolated_mlflow)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_new_default_store_in_a_subfolder_of_the_checkout_is_said(tmp_path, monkeypatch, capsys):
    """`cd docs && python -m logistic_regression.train` made docs/mlflow.db, docs/mlruns
    and docs/outputs without a word: a second store where nobody looks for runs."""
    from logistic_regression import console

    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    monkeypatch.chdir(root / "docs")
    console.note_new_store_here("sqlite:///mlflow.db", root)
    err = capsys.readouterr().err
    assert err == (
        f"note: making a new tracking store {root / 'docs' / 'mlflow.db'} in this subfolder "
        f"of the checkout; the checkout's store is {root / 'mlflow.db'}: run from {root}, "
        f"or set MLFLOW_TRACKING_URI=sqlite:///{root / 'mlflow.db'}\n"
    )
    monkeypatch.chdir(root)  # at the root, or for a store given in full: nothing to say
    console.note_new_store_here("sqlite:///mlflow.db", root)
    console.note_new_store_here(f"sqlite:///{root / 'docs' / 'x.db'}", root)
    assert capsys.readouterr().err == ""
