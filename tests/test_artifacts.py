"""The asynchronous artifact writer against real stores: a local artifact root and a
real SeaweedFS S3 server that the tests freeze (SIGSTOP), stop and restart."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sys
from pathlib import Path

import pytest
from conftest import returns_within
from servers import s3_bytes

from logistic_regression.artifacts import ArtifactWriter, Journal, spool_root
from logistic_regression.uploader import multipart_etag


@pytest.fixture
def storage(base_config, tmp_path):
    return dataclasses.replace(
        base_config.storage,
        spool_dir=str(tmp_path / "spool"),
        retry=dataclasses.replace(base_config.storage.retry, backoff_s=0.1, max_backoff_s=0.5),
        progress=False,
    )


def test_local_root_files_are_stored_verified_and_the_spool_emptied(storage, tmp_path):
    source = tmp_path / "made"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.bin").write_bytes(os.urandom(4096))
    store = tmp_path / "store"
    root = store.as_uri()

    with ArtifactWriter("run1", "sqlite:///unused.db", storage) as writer:
        writer.log_folder(source, root, "inputs")
        writer.log_file(source / "a.txt", root)
        result = writer.flush(timeout=30)
        folder = writer.folder

    assert result.complete and result.uploaded == 3
    assert (store / "inputs" / "a.txt").read_text() == "alpha"
    assert (store / "inputs" / "sub" / "b.bin").read_bytes() == (source / "sub/b.bin").read_bytes()
    assert (store / "a.txt").read_text() == "alpha"
    assert not folder.exists(), "a complete run leaves nothing in the spool"


def test_logging_returns_while_the_store_hangs_and_flush_is_bounded(storage, private_s3, tmp_path):
    """With the S3 server frozen, logging still returns (it never touches the network);
    the end of the run waits for the uploads, but only as long as its bound."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    small = tmp_path / "small.txt"
    small.write_text("version 1")
    root = "s3://kit/async/run2/artifacts"
    storage = dataclasses.replace(storage, multipart_threshold_mb=8, multipart_chunksize_mb=5)

    private_s3.freeze()
    try:
        writer = ArtifactWriter("run2", "sqlite:///unused.db", storage)
        writer.log_file(big, root)
        writer.log_file(small, root)  # snapshotted now ...
        small.write_text("version 2, written after logging")  # ... so this is not uploaded
        # It returns while the store is still frozen (a generous bound turns a hang into a
        # failure), having waited its own limit, with both files still pending.
        bounded = returns_within(60, writer.flush, timeout=1.0)
        assert not bounded.complete and len(bounded.pending) == 2
        assert bounded.seconds >= 1.0
    finally:
        private_s3.thaw()
    try:
        result = writer.flush(timeout=120)
    finally:
        writer.close()
    assert result.complete, result.errors
    assert s3_bytes(private_s3, f"{root}/big.bin") == big.read_bytes()
    assert s3_bytes(private_s3, f"{root}/small.txt") == b"version 1"
    etag = private_s3.client().head_object(Bucket="kit", Key="async/run2/artifacts/big.bin")
    assert etag["ETag"].strip('"').endswith("-3"), "12 MB in 5 MB parts is a multipart upload"


def test_transient_outage_is_retried_until_the_store_is_back(storage, private_s3, tmp_path):
    storage = dataclasses.replace(
        storage,
        retry=dataclasses.replace(storage.retry, max_attempts=60, backoff_s=0.2, max_backoff_s=1),
    )
    payload = tmp_path / "payload.txt"
    payload.write_text("survives an outage")
    root = "s3://kit/outage/run3/artifacts"

    private_s3.stop()
    with ArtifactWriter("run3", "sqlite:///unused.db", storage) as writer:
        writer.log_file(payload, root)
        private_s3.start()
        result = writer.flush(timeout=120)
    assert result.complete, result.errors
    assert s3_bytes(private_s3, f"{root}/payload.txt") == b"survives an outage"


def test_failed_uploads_stay_in_the_spool_and_resume_uploads_them(storage, private_s3, tmp_path):
    storage = dataclasses.replace(storage, retry=dataclasses.replace(storage.retry, max_attempts=2))
    files = []
    for n in range(5):
        path = tmp_path / f"f{n}.txt"
        path.write_text(f"file {n}")
        files.append(path)
    root = "s3://kit/spool/run4/artifacts"

    private_s3.stop()
    with ArtifactWriter("run4", "sqlite:///unused.db", storage) as writer:
        for path in files:
            writer.log_file(path, root)
        result = writer.flush(timeout=60)
        folder = writer.folder
    assert not result.complete and len(result.pending) == 5
    assert result.errors and "f" in result.errors[0]
    journal = Journal.read(folder)
    assert journal.run_id == "run4" and len(journal.pending) == 5
    for entry in journal.pending:
        assert (folder / entry.source).read_text() == f"file {entry.path[1]}"

    private_s3.start()
    with ArtifactWriter("run4", "sqlite:///unused.db", storage) as resumed:
        assert resumed.resume() == 5
        assert resumed.flush(timeout=60).complete
    for n in range(5):
        assert s3_bytes(private_s3, f"{root}/f{n}.txt") == f"file {n}".encode()
    assert not folder.exists()


def test_a_run_folder_is_locked_while_its_writer_lives(storage):
    from filelock import Timeout

    with ArtifactWriter("run5", "sqlite:///unused.db", storage):
        with pytest.raises(Timeout):
            ArtifactWriter("run5", "sqlite:///unused.db", storage)


def test_expected_etag_matches_s3_for_single_and_multipart(tmp_path):
    data = os.urandom(11 * 1024 * 1024)
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    assert multipart_etag(path, 64 << 20, 8 << 20) == hashlib.md5(data).hexdigest()
    parts = [hashlib.md5(data[i : i + (8 << 20)]).digest() for i in range(0, len(data), 8 << 20)]
    assert multipart_etag(path, 8 << 20, 8 << 20) == hashlib.md5(b"".join(parts)).hexdigest() + "-2"


def test_spool_root_prefers_config_then_environment(storage, monkeypatch, tmp_path):
    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(tmp_path / "from-env"))
    assert spool_root(dataclasses.replace(storage, spool_dir="")) == tmp_path / "from-env"
    assert spool_root(storage) == Path(storage.spool_dir)
    monkeypatch.delenv("LOGREG_SPOOL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "logistic-regression" / "spool"
    assert spool_root(dataclasses.replace(storage, spool_dir="")) == expected


def test_progress_bar_only_for_large_files_when_enabled(tmp_path, capsys):
    from logistic_regression.uploader import Engine, Entry, Settings

    folder = tmp_path / "run"
    (folder / "files").mkdir(parents=True)
    big, small = folder / "files" / "big.bin", folder / "files" / "small.txt"
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    small.write_text("tiny")
    store = tmp_path / "store"

    def upload(progress: bool) -> str:
        engine = Engine(folder, Settings(workers=2, progress=progress))
        for n, path in enumerate((big, small)):
            engine.submit(
                Entry(n, f"files/{path.name}", str(store), path.name, path.stat().st_size)
            )
        import time

        assert engine.wait(time.monotonic() + 60)
        engine.close()
        return capsys.readouterr().err

    shown = upload(progress=True)
    assert "big.bin" in shown and "9.44M" in shown and "small.txt" not in shown
    assert upload(progress=False) == ""
    assert (store / "big.bin").read_bytes() == big.read_bytes()


class _Stderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("enabled", "tty", "shown"), [
    (True, True, True),
    (True, False, False),
    (False, True, False),
])  # fmt: skip
def test_progress_needs_the_setting_and_a_terminal_on_stderr(
    storage, monkeypatch, enabled, tty, shown
):
    from logistic_regression.uploader import Settings

    monkeypatch.setattr(sys, "stderr", _Stderr(tty))
    settings = Settings.from_storage(dataclasses.replace(storage, progress=enabled), "sqlite:///x")
    assert settings.progress is shown
