"""Writes below a folder never follow a link someone planted there (storage/beneath.py):
the predictions of a run, and files copied into a local artifact store."""

from __future__ import annotations

import pytest

from logistic_regression.storage.beneath import copy_beneath, write_beneath


@pytest.fixture
def elsewhere(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "predictions.csv").write_text("someone else's file\n")
    return target


def test_a_link_planted_for_the_run_folder_is_not_followed(tmp_path, elsewhere):
    output = tmp_path / "outputs"
    output.mkdir()
    (output / "run1").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link .* nothing is written through it"):
        write_beneath(output, "run1/predictions.csv", b"x")
    assert (elsewhere / "predictions.csv").read_text() == "someone else's file\n"


def test_a_link_planted_for_the_file_is_not_followed(tmp_path, elsewhere):
    output = tmp_path / "outputs"
    (output / "run1").mkdir(parents=True)
    (output / "run1" / "predictions.csv").symlink_to(elsewhere / "predictions.csv")
    source = tmp_path / "new.csv"
    source.write_bytes(b"new")
    for write in (
        lambda: write_beneath(output, "run1/predictions.csv", b"x"),
        lambda: copy_beneath(source, output, "run1/predictions.csv"),
    ):
        with pytest.raises(OSError, match="symbolic link"):
            write()
    assert (elsewhere / "predictions.csv").read_text() == "someone else's file\n"


def test_paths_outside_the_folder_are_refused_and_normal_ones_written(tmp_path):
    with pytest.raises(OSError, match="not a path beneath"):
        write_beneath(tmp_path, "../escape.txt", b"x")
    with pytest.raises(OSError, match="not a path beneath"):
        write_beneath(tmp_path, "/etc/escape.txt", b"x")
    assert not (tmp_path.parent / "escape.txt").exists()
    written = write_beneath(tmp_path / "new" / "store", "a/b/c.txt", b"abc")
    assert written.read_bytes() == b"abc"
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 8192)
    copied = copy_beneath(source, tmp_path / "store", "x/big.bin")
    assert copied.read_bytes() == source.read_bytes()
    write_beneath(tmp_path / "new" / "store", "a/b/c.txt", b"shorter")  # truncated
    assert written.read_bytes() == b"shorter"


def test_a_run_refuses_a_link_planted_where_its_predictions_go(tmp_path, elsewhere, monkeypatch):
    """`mlflow run` makes the run first, so its id is known before training: a link
    planted at <output>/<run id>/ ends the run FAILED in one line, writing nothing there."""
    from mlflow.tracking import MlflowClient

    from logistic_regression import train

    client = MlflowClient()
    experiment = client.create_experiment("planted")
    run_id = client.create_run(experiment).info.run_id
    output = tmp_path / "outputs"
    output.mkdir()
    (output / run_id).symlink_to(elsewhere)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    code = train.main([f"data.output={output}", "tracking.experiment_name=planted"])
    assert code == 2
    assert (elsewhere / "predictions.csv").read_text() == "someone else's file\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["predictions.csv"]
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert "symbolic link" in run.data.tags["kit.error"]
