"""The asynchronous artifact writer against real stores: a local artifact root and a
real SeaweedFS S3 server that the tests freeze (SIGSTOP), stop and restart."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import returns_within
from servers import s3_bytes

from logistic_regression.storage.spool import Journal, spool_root
from logistic_regression.storage.writer import ArtifactWriter


@pytest.fixture
def storage(base_config, tmp_path):
    return dataclasses.replace(
        base_config.storage,
        spool_dir=str(tmp_path / "spool"),
        retry=dataclasses.replace(base_config.storage.retry, backoff_s=0.1, max_backoff_s=0.5),
        progress=False,
    )


def children() -> set[int]:
    """The processes this one started that are still alive (Linux: /proc's children)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


@pytest.mark.parametrize("local_only", [False, True], ids=["uploader-process", "in-process"])
def test_local_root_files_are_stored_verified_and_the_spool_emptied(storage, tmp_path, local_only):
    """Both ways of running the engine store the same files; for local folders only
    (`local_only`), no process is started at all and no upload thread outlives `close`."""
    source = tmp_path / "made"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.bin").write_bytes(os.urandom(4096))
    store = tmp_path / "store"
    root = store.as_uri()
    before, threads = children(), threading.active_count()

    with ArtifactWriter("run1", "sqlite:///unused.db", storage, local_only=local_only) as writer:
        started = children() - before
        writer.log_folder(source, root, "inputs")
        writer.log_file(source / "a.txt", root)
        result = writer.flush(timeout=30)
        folder = writer.folder
    assert bool(started) is not local_only, started
    assert threading.active_count() == threads

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
    gone = tmp_path / "gone.txt"
    gone.write_text("deleted after logging")
    storage = dataclasses.replace(storage, multipart_threshold_mb=8, multipart_chunksize_mb=5)

    private_s3.freeze()
    try:
        writer = ArtifactWriter("run2", "sqlite:///unused.db", storage)
        writer.log_file(big, root)
        writer.log_file(small, root)  # copied into the spool now ...
        small.write_text("version 2, written after logging")  # ... so this is not uploaded
        writer.log_file(gone, root)
        gone.unlink()  # nor does a deletion after logging lose the file
        # It returns while the store is still frozen (a generous bound turns a hang into a
        # failure), having waited its own limit, with the files still pending.
        began = time.monotonic()
        bounded = returns_within(60, writer.flush, timeout=1.0)
        assert not bounded.complete and len(bounded.pending) == 3
        assert time.monotonic() - began >= 1.0, "it waited its bound first"
    finally:
        private_s3.thaw()
    try:
        result = writer.flush(timeout=120)
    finally:
        writer.close()
    assert result.complete, result.errors
    assert s3_bytes(private_s3, f"{root}/big.bin") == big.read_bytes()
    assert s3_bytes(private_s3, f"{root}/small.txt") == b"version 1"
    assert s3_bytes(private_s3, f"{root}/gone.txt") == b"deleted after logging"
    head = private_s3.client().head_object(
        Bucket="kit", Key="async/run2/artifacts/big.bin", ChecksumMode="ENABLED"
    )
    assert head["ChecksumCRC32"].endswith("-3"), "12 MB in 5 MB parts, each part checksummed"


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
        assert len(resumed.journal.pending) == 5
        assert resumed.flush(timeout=60).complete
    for n in range(5):
        assert s3_bytes(private_s3, f"{root}/f{n}.txt") == f"file {n}".encode()
    assert not folder.exists()


def test_a_run_folder_is_locked_while_its_writer_lives(storage):
    from filelock import Timeout

    with ArtifactWriter("run5", "sqlite:///unused.db", storage):
        with pytest.raises(Timeout):
            ArtifactWriter("run5", "sqlite:///unused.db", storage)


def test_spool_root_prefers_config_then_environment(storage, monkeypatch, tmp_path):
    from logistic_regression.config import compose_config

    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(tmp_path / "from-env"))
    assert spool_root(compose_config([]).storage) == tmp_path / "from-env"
    chosen = compose_config([f"storage.spool_dir={tmp_path / 'chosen'}"]).storage
    assert spool_root(chosen) == tmp_path / "chosen"
    monkeypatch.delenv("LOGREG_SPOOL_DIR")
    assert compose_config([]).storage.spool_dir == ""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "logistic-regression" / "spool"
    assert spool_root(dataclasses.replace(storage, spool_dir="")) == expected


def test_progress_bar_only_for_large_files_when_enabled(tmp_path, capsys):
    from logistic_regression.storage.spool import Entry
    from logistic_regression.storage.uploader import Engine, Settings

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
    from logistic_regression.storage.uploader import Settings

    monkeypatch.setattr(sys, "stderr", _Stderr(tty))
    settings = Settings.from_storage(dataclasses.replace(storage, progress=enabled), "sqlite:///x")
    assert settings.progress is shown


def results(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_mlflow_s3_settings_are_honoured(storage, s3_env, monkeypatch, tmp_path):
    """MLflow's S3 settings: content types guessed as MLflow does, extra upload args."""
    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", json.dumps({"Metadata": {"team": "kit"}}))
    (tmp_path / "report.html").write_text("<!doctype html><html></html>")
    (tmp_path / "predictions.csv").write_text("a,b\n1,2\n")
    root = "s3://kit/settings/run7/artifacts"
    with ArtifactWriter("run7", "sqlite:///unused.db", storage) as writer:
        writer.log_file(tmp_path / "report.html", root)
        writer.log_file(tmp_path / "predictions.csv", root)
        assert writer.flush(timeout=60).complete
    client = s3_env.client()
    html = client.head_object(Bucket="kit", Key="settings/run7/artifacts/report.html")
    csv = client.head_object(Bucket="kit", Key="settings/run7/artifacts/predictions.csv")
    assert html["ContentType"] == "text/html" and csv["ContentType"] == "text/csv"
    assert html["Metadata"] == {"team": "kit"} == csv["Metadata"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_ignore_tls_reaches_a_store_with_a_self_signed_certificate(storage, tmp_path, monkeypatch):
    """MLFLOW_S3_IGNORE_TLS, as for MLflow: certificates are checked unless it is true."""
    import shutil

    from servers import S3Server

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    storage = dataclasses.replace(storage, retry=dataclasses.replace(storage.retry, max_attempts=1))
    payload = tmp_path / "payload.txt"
    payload.write_text("over https")
    server = S3Server(tmp_path / "tls-s3", tls=True)
    try:
        server.start(buckets=("kit",))
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        with ArtifactWriter("run8", "sqlite:///unused.db", storage) as writer:
            writer.log_file(payload, "s3://kit/tls/checked")
            refused = writer.flush(timeout=60)
        assert not refused.complete and "certificate verify failed" in refused.errors[0]

        monkeypatch.setenv("MLFLOW_S3_IGNORE_TLS", "true")
        with ArtifactWriter("run9", "sqlite:///unused.db", storage) as writer:
            writer.log_file(payload, "s3://kit/tls/unchecked")
            assert writer.flush(timeout=60).complete
        assert s3_bytes(server, "s3://kit/tls/unchecked/payload.txt") == b"over https"
    finally:
        server.stop()


def test_verification_compares_the_stored_checksum_with_the_uploads(s3_env, tmp_path):
    """An object replaced after the upload (same size, other bytes) fails verification."""
    from logistic_regression.storage import s3

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * 1024 * 1024))
    transfers = s3.Transfers(budget=4, verifiers=1, threshold=5 << 20, chunk=5 << 20)
    try:
        transfers.upload(path, "s3://kit/verify/big.bin", path.stat().st_size, lambda _: None)
        answer = {"operation": "CompleteMultipartUpload"}
        head = s3_env.client().head_object(
            Bucket="kit", Key="verify/big.bin", ChecksumMode="ENABLED"
        )
        answer["ChecksumCRC32"] = head["ChecksumCRC32"]
        assert head["ChecksumCRC32"].endswith("-3")
        transfers.verify("kit", "verify/big.bin", path.stat().st_size, answer)
        s3_env.client().put_object(
            Bucket="kit", Key="verify/big.bin", Body=os.urandom(path.stat().st_size)
        )
        replaced = r"stored checksum CRC32:\S+ is not the uploaded CRC32:\S+-3"
        with pytest.raises(OSError, match=replaced):
            transfers.verify("kit", "verify/big.bin", path.stat().st_size, answer)
    finally:
        transfers.close()


def test_an_old_journal_is_still_read(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    lines = [
        {"event": "run", "run_id": "r", "tracking_uri": "sqlite:///x.db", "pid": 1},
        {"event": "queued", "id": 0, "source": "files/0/a", "root": "s3://b/p", "path": "a",
         "size": 3},
        {"event": "model", "model_id": "m-1"},
    ]  # fmt: skip
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    journal = Journal.read(folder)
    (entry,) = journal.pending
    assert entry.destination == "s3://b/p/a" and entry.run_id == ""
    assert journal.models == ["m-1"]


def test_a_signal_while_the_writer_opens_leaves_no_folder_and_no_lock(storage, monkeypatch):
    """SIGTERM while the uploader is being started (after the journal's first line):
    nothing was queued, so nothing may be left for a `sync` that has nothing to do."""
    import signal

    from logistic_regression.errors import Interrupted
    from logistic_regression.storage import uploads

    def interrupted_start(*args, **kwargs):
        raise Interrupted(signal.SIGTERM)

    folder = spool_root(storage) / "run-opening"
    with monkeypatch.context() as patched:
        patched.setattr(uploads.subprocess, "Popen", interrupted_start)
        with pytest.raises(Interrupted):
            ArtifactWriter("run-opening", "sqlite:///x.db", storage)
    assert not folder.exists()
    with ArtifactWriter("run-opening", "sqlite:///x.db", storage) as reopened:  # not locked
        assert reopened.journal.run_id == "run-opening"


def test_an_uploader_whose_folder_is_gone_exits_quietly(storage, tmp_path):
    """A run stopped before it logged anything removes its spool folder, maybe while its
    uploader is still starting: the uploader finds nothing to do and says nothing (it
    printed a FileNotFoundError traceback under the run's one line)."""
    import subprocess

    from logistic_regression.storage.uploader import Settings, settings_argument

    gone = tmp_path / "spool" / "run-gone"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "logistic_regression.storage.uploader",
            str(gone),
            settings_argument(Settings.from_storage(storage, "sqlite:///x.db")),
        ],
        input=b"",
        capture_output=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr.decode()) == (0, "")
