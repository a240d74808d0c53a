"""The spool on disks that cannot take a run, in process, on real filesystems: a path
that is a file, a read-only mount, a small disk, a disk that fills during the run.

Small and read-only disks are real tmpfs mounts (tests/servers.py `tmpfs`), which needs
root; elsewhere these tests are skipped, saying so. Root ignores file modes, so a
read-only mount is what makes a folder root cannot write.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import nullcontext

import pytest
from mlflow.tracking import MlflowClient
from servers import fill_disk, tmpfs

from logistic_regression import cli, pipeline, train
from logistic_regression.__main__ import main
from logistic_regression.storage.writer import ArtifactWriter

MiB = 1024 * 1024


def no_run_recorded() -> bool:
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return not client.search_runs(experiments)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "unexpected" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["a file", "under a file", "read-only mount"])
def test_an_unwritable_spool_is_refused_before_the_run(tmp_path, monkeypatch, capsys, kind):
    (tmp_path / "taken").write_text("not a folder")
    spool = {
        "a file": tmp_path / "taken",
        "under a file": tmp_path / "taken" / "spool",
        "read-only mount": tmp_path / "ro",
    }[kind]
    mounted = tmpfs(spool, "1m", read_only=True) if kind == "read-only mount" else nullcontext()
    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(spool))
    with mounted:
        code = train.main([])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert f"the spool {spool}" in line
    expected = {
        "a file": "is a file; it must be a folder",
        "under a file": "a file; it must be a folder",
        "read-only mount": "cannot be written: Read-only file system",
    }[kind]
    assert expected in line
    assert (tmp_path / "taken").read_text() == "not a folder"
    assert no_run_recorded()


def test_a_spool_without_room_for_a_run_is_refused_before_it(tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "small", "1m") as small:
        monkeypatch.setenv("LOGREG_SPOOL_DIR", str(small))
        code = train.main([])
        assert list(small.iterdir()) == []
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert f"the spool {small}" in line
    assert "has 1.0 MiB free; a run needs 8.0 MiB there (7.0 MiB missing)" in line
    assert no_run_recorded()


def test_a_disk_that_fills_during_the_run_keeps_the_folder_and_says_what_is_missing(
    config, tmp_path, monkeypatch, capsys
):
    """Another process fills the spool's disk once the run exists (all but 64 KiB):
    the run stops before writing its model, FAILED with one line that names the
    folder and the space missing; the folder is kept; `sync` later settles it."""
    with tmpfs(tmp_path / "disk", "12m") as disk:
        monkeypatch.setenv("LOGREG_SPOOL_DIR", str(disk))  # for sync, below
        config = dataclasses.replace(
            config, storage=dataclasses.replace(config.storage, spool_dir=str(disk))
        )
        filler: list = []

        def fill(run_id: str) -> None:
            path = fill_disk(disk)
            os.truncate(path, path.stat().st_size - 64 * 1024)
            filler.append(path)

        def run_filling_the_disk() -> int:
            pipeline.run(config, on_open=fill)
            return 0

        code = cli.guarded(run_filling_the_disk)
        line = one_error_line(capsys.readouterr().err)
        (run,) = MlflowClient().search_runs(
            [MlflowClient().get_experiment_by_name("logistic-regression").experiment_id]
        )
        run_id = run.info.run_id
        folder = disk / run_id
        assert code == 2
        assert "the spool's disk is full: the model needs" in line
        assert "missing; this run's files are kept in " + str(folder) in line
        assert run.info.status == "FAILED"
        assert "the spool's disk is full: the model needs" in run.data.tags["kit.error"]
        assert run.data.tags["kit.artifacts"] == "none", "nothing was logged"
        assert "kit.artifacts_pending" not in run.data.tags
        assert (folder / "journal.jsonl").is_file(), "kept on a full disk"

        filler[0].unlink()  # space is back
        assert main(["sync"]) == 0
        out, err = capsys.readouterr()
        assert err == "" and f"run {run_id}: artifacts none, status FAILED" in out
        run = MlflowClient().get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["kit.artifacts"] == "none"
        assert not folder.exists()


def test_a_copy_that_does_not_fit_is_not_started(base_config, tmp_path):
    """A file logged by path (copied into the spool) larger than the spool's free space:
    nothing is copied (no partial file), and the flush says what is missing."""
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(3 * MiB))
    with tmpfs(tmp_path / "disk", "2m") as disk:
        storage = dataclasses.replace(base_config.storage, spool_dir=str(disk))
        with ArtifactWriter("run-copy", "sqlite:///unused.db", storage) as writer:
            writer.log_file(big, str(tmp_path / "store"))
            assert not (writer.folder / "files").exists()
            result = writer.flush(timeout=30)
        assert not result.complete
        (pending,) = result.pending
        assert pending.startswith("weights.bin (not spooled: the spool's disk is full: ")
        assert "weights.bin needs 3.0 MiB (and 256.0 KiB kept free" in pending
        assert " missing; " in pending
        assert big.stat().st_size == 3 * MiB
