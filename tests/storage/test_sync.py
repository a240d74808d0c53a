"""`sync` folder by folder, in process, against real SQLite stores and a real local
artifact store: one bad spool folder never stops the others, other tracking stores'
folders are left alone unless asked, and `kit.artifacts` says what really happened.

A run's spool folder is made as a run makes it: a real run in the test's store, an
`ArtifactWriter` whose uploads fail (its artifact root cannot be created), and the run
ended as the kit ends it then (FAILED, `kit.artifacts=pending`). The store is then
repaired, and `sync` is the CLI command (`python -m logistic_regression sync`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import mlflow
import pytest
from conftest import new_store, recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression.__main__ import main
from logistic_regression.storage import abandoned, spool
from logistic_regression.storage.spool import Journal
from logistic_regression.storage.writer import ArtifactWriter
from logistic_regression.tracking import artifact_state, runs


@pytest.fixture
def storage(base_config, tmp_path):
    return dataclasses.replace(
        base_config.storage,
        spool_dir=str(tmp_path / "spool"),
        retry=dataclasses.replace(base_config.storage.retry, max_attempts=1, backoff_s=0),
        progress=False,
    )


@dataclasses.dataclass
class Spooled:
    run_id: str
    folder: Path
    store: Path  # the local artifact store the run's files go to
    client: MlflowClient

    def contents(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.folder).as_posix(): p.read_bytes()
            for p in sorted(self.folder.rglob("*"))
            if p.is_file()
        }

    def run(self):
        return self.client.get_run(self.run_id)


def spooled_run(
    storage,
    tmp_path: Path,
    uri: str,
    name: str,
    seal: bool = True,
    reason: str = "",
    running: bool = False,
) -> Spooled:
    """A run whose uploads failed: its files wait in the spool, the run is FAILED with
    `kit.artifacts=pending` (what the kit leaves when the store is down). Unblocked:
    its store can take the files again when this returns. `seal=False`: the run failed
    (`reason`) before its logging was over, so its writer was never flushed.
    `running=True`: left RUNNING, its store still blocked (a process killed mid-upload
    while the store was down)."""
    client = MlflowClient(uri)
    run_id = recorded_run("sync-tests", name, status=None, client=client)
    blocker = tmp_path / f"{name}-store"
    blocker.write_text("a file where the artifact folder should be")
    source = tmp_path / f"{name}.txt"
    source.write_text(f"the {name} report")
    with ArtifactWriter(run_id, uri, storage) as writer:
        writer.log_file(source, str(blocker / "artifacts"), "reports")
        result = writer.flush(timeout=60) if seal else None
        folder = writer.folder
    assert result is None or not result.complete
    assert folder.is_dir()
    if running:
        return Spooled(run_id, folder, blocker / "artifacts", client)
    test_store = mlflow.get_tracking_uri()
    runs.use_uri(uri)
    artifact_state.mark_artifacts(run_id, [f"{blocker}/artifacts/reports/{name}.txt"])
    runs.fail_run(run_id, reason or f"{artifact_state.PENDING_ERROR}: 1 of 1 files are kept")
    runs.use_uri(test_store)
    blocker.unlink()
    return Spooled(run_id, folder, blocker / "artifacts", client)


def sync_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["sync", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_synced(run: Spooled, artifacts: str = "complete", status: str = "FINISHED") -> None:
    stored = run.run()
    assert stored.info.status == status
    assert stored.data.tags["kit.artifacts"] == artifacts
    assert "kit.artifacts_pending" not in stored.data.tags
    assert not run.folder.exists()
    name = run.run().info.run_name
    assert (run.store / "reports" / f"{name}.txt").read_text() == f"the {name} report"


def assert_untouched_pending(run: Spooled, before: dict[str, bytes]) -> None:
    stored = run.run()
    assert stored.info.status == "FAILED"
    assert stored.data.tags["kit.artifacts"] == "pending"
    assert stored.data.tags["kit.artifacts_pending"].startswith("1 files: ")
    assert run.contents() == before, "a folder that cannot be synced is kept as it was"


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _delete_run(bad: Spooled, tmp_path: Path, isolated_mlflow: str) -> str:
    bad.client.delete_run(bad.run_id)
    return "the run was deleted from"


def _damage_journal(bad: Spooled, tmp_path: Path, isolated_mlflow: str) -> str:
    journal = bad.folder / "journal.jsonl"
    lines = journal.read_text().splitlines()
    cut = '{"event": "queued", "id": 7, "sou'  # a line cut in the middle of the log
    journal.write_text("\n".join([lines[0], cut, *lines[1:]]) + "\n")
    return "1 line(s) of its journal.jsonl cannot be read"


def _empty_journal(bad: Spooled, tmp_path: Path, isolated_mlflow: str) -> str:
    (bad.folder / "journal.jsonl").write_text("")
    (bad.folder / "files" / "0").mkdir(parents=True, exist_ok=True)  # the logged copy's
    (bad.folder / "files" / "0" / "kept.bin").write_bytes(b"bytes nobody logged")
    return "names no run (empty or damaged)"


def _run_missing(bad: Spooled, tmp_path: Path, isolated_mlflow: str) -> str:
    journal = bad.folder / "journal.jsonl"
    journal.write_text(journal.read_text().replace(bad.run_id, "0" * 32))
    return f"the run is not in its tracking store {isolated_mlflow}"


@pytest.mark.parametrize(
    "spoil",
    [_delete_run, _damage_journal, _empty_journal, _run_missing],
    ids=["deleted-run", "damaged-journal", "empty-journal", "run-not-in-store"],
)
def test_one_bad_folder_is_reported_kept_and_skipped(
    storage, tmp_path, isolated_mlflow, capsys, spoil
):
    """The bad folder sorts before the good one, so the good one is synced after it."""
    good = spooled_run(storage, tmp_path, isolated_mlflow, "good")
    bad = spooled_run(storage, tmp_path, isolated_mlflow, "bad")
    renamed = bad.folder.with_name("0" + bad.folder.name[1:])
    bad.folder.rename(renamed)
    bad.folder = renamed
    expected = spoil(bad, tmp_path, isolated_mlflow)
    before = bad.contents()

    code, out, err = sync_cli(capsys)

    assert code == 1, "a folder left behind"
    line = one_line(err)
    assert "not synced" in line and expected in line and "kept" in line
    assert str(bad.folder) in line or bad.folder.name in line
    assert bad.contents() == before
    if spoil is not _run_missing:
        stored = bad.run()
        assert stored.info.status == "FAILED" and stored.data.tags["kit.artifacts"] == "pending"
    assert_synced(good)
    assert f"run {good.run_id}: 1 files uploaded and verified" in out


def test_other_stores_folders_are_left_alone_unless_asked(
    storage, tmp_path, isolated_mlflow, migrated_store, monkeypatch, capsys
):
    """Two checkouts share the default spool. Each `sync` handles its own store's runs,
    whatever form its URI takes; `--all` handles both, each against its own store."""
    other_uri = new_store(migrated_store, tmp_path / "other.db")
    mine = spooled_run(storage, tmp_path, isolated_mlflow, "mine")
    theirs = spooled_run(storage, tmp_path, other_uri, "theirs")
    theirs_before = theirs.contents()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # relative: the same store

    code, out, err = sync_cli(capsys)

    assert code == 0 and err == ""
    assert_synced(mine)
    assert "1 spool folder(s) of other tracking stores left alone" in out
    assert "sync --all" in out
    assert_untouched_pending(theirs, theirs_before)

    code, out, err = sync_cli(capsys)
    assert code == 0 and "nothing to sync" in out and "left alone" in out

    code, out, err = sync_cli(capsys, "--all")
    assert code == 0 and err == ""
    assert_synced(theirs)
    assert "left alone" not in out


def test_a_store_that_no_longer_exists_is_never_created(
    storage, tmp_path, isolated_mlflow, migrated_store, capsys
):
    gone_uri = new_store(migrated_store, tmp_path / "moved.db")
    orphan = spooled_run(storage, tmp_path, gone_uri, "orphan")
    (tmp_path / "moved.db").unlink()
    before = orphan.contents()

    code, out, err = sync_cli(capsys, "--all")

    assert code == 1
    line = one_line(err)
    assert f"its tracking store {gone_uri} does not exist" in line and str(orphan.folder) in line
    assert not (tmp_path / "moved.db").exists(), "MLflow would have made an empty store"
    assert orphan.contents() == before


def test_a_run_that_ended_before_logging_everything_is_partial_not_complete(
    storage, tmp_path, isolated_mlflow, capsys
):
    """A run that failed after logging one file (its logging was never sealed by a
    flush) is `partial` once that file is stored: not `complete`, and not FINISHED."""
    run = spooled_run(
        storage, tmp_path, isolated_mlflow, "halfway", seal=False, reason="ValueError: broke"
    )
    journal = Journal.read(run.folder)
    assert not journal.sealed and journal.closed and journal.entries

    code, out, err = sync_cli(capsys)

    assert code == 0 and err == "", err
    assert_synced(run, artifacts="partial", status="FAILED")
    assert "artifacts partial, status FAILED" in out
    assert run.run().data.tags["kit.error"] == "ValueError: broke"


def as_if_written_by_a_process_that_exited(folder: Path) -> int:
    """Rewrite the journal's pid to one of a process that has exited (the test's own
    process wrote it, and it is alive)."""
    exited = subprocess.Popen(["true"])
    exited.wait()
    journal = folder / "journal.jsonl"
    first, *rest = journal.read_text().splitlines()
    record = json.loads(first)
    record["pid"] = exited.pid
    journal.write_text("\n".join([json.dumps(record), *rest]) + "\n")
    return exited.pid


def test_a_running_run_whose_process_is_gone_is_killed_even_while_files_wait(
    storage, tmp_path, isolated_mlflow, capsys
):
    """The store is still down when `sync` first runs: the run is KILLED with the reason
    and its files stay pending; once the store is back, they are stored and the reason
    says so (the run stays KILLED)."""
    run = spooled_run(storage, tmp_path, isolated_mlflow, "lost", running=True)
    pid = as_if_written_by_a_process_that_exited(run.folder)
    before = run.contents()

    code, out, err = sync_cli(capsys, "storage.retry.backoff_s=0.05")  # the store is down

    assert code == 1
    line = one_line(err)
    assert f"run {run.run_id}: 1 files still pending (reports/lost.txt: " in line
    assert f"kept in {run.folder}, status KILLED" in line
    killed = run.run()
    assert killed.info.status == "KILLED"
    assert killed.data.tags["kit.artifacts"] == "pending"
    assert killed.data.tags["kit.artifacts_pending"].startswith("1 files: ")
    assert killed.data.tags["kit.error"] == (
        f"the run's process ended without ending the run (pid {pid}; killed?); 1 of its "
        "files wait in the spool for `python -m logistic_regression sync`"
    )
    after = run.contents()
    assert {k: v for k, v in after.items() if k != "results.jsonl"} == {
        k: v for k, v in before.items() if k != "results.jsonl"
    }

    (run.store.parent).unlink()  # the store is back
    code, out, err = sync_cli(capsys)
    assert code == 0 and err == ""
    assert_synced(run, status="KILLED")
    assert run.run().data.tags["kit.error"] == (
        f"the run's process ended without ending the run (pid {pid}; killed?); "
        "sync stored its artifacts"
    )


@pytest.mark.parametrize("ended_later", [False, True], ids=["left-running", "failed-no-reason"])
def test_a_run_stopped_by_its_failed_store_is_ended_failed_with_the_reason(
    storage, tmp_path, isolated_mlflow, capsys, ended_later
):
    """The tracking store failed mid-run and the run could not be ended then (it stayed
    RUNNING): the writer noted why in the journal and kept the folder; once the store is
    back, `sync` stores the files and ends the run FAILED with that reason, not KILLED."""
    client = MlflowClient(isolated_mlflow)
    run_id = recorded_run("sync-tests", "stopped", status=None, client=client)
    if ended_later:  # a locked SQLite store came back before the process exited
        client.set_terminated(run_id, "FAILED")
    source = tmp_path / "stopped.txt"
    source.write_text("the stopped report")
    writer = ArtifactWriter(run_id, isolated_mlflow, storage)
    writer.log_file(source, str(tmp_path / "store" / "artifacts"), "reports")
    writer.note_failure("the tracking store failed: connection refused (the server is down)")
    writer.close(remove_if_complete=False)
    folder = writer.folder
    assert Journal.read(folder).needs_sync
    as_if_written_by_a_process_that_exited(folder)

    code, out, err = sync_cli(capsys)

    assert code == 0 and err == "", out + err
    assert f"run {run_id}: artifacts partial, status FAILED" in out
    ended = client.get_run(run_id)
    assert ended.info.status == "FAILED"
    assert ended.data.tags["kit.artifacts"] == "partial"
    assert ended.data.tags["kit.error"] == (
        "the tracking store failed: connection refused (the server is down); sync stored "
        "the artifacts it had logged; it ended before logging the rest"
    )
    assert (tmp_path / "store" / "artifacts" / "reports" / "stopped.txt").is_file()
    assert not folder.exists()


def test_folders_of_live_processes_are_busy_and_only_dead_owners_are_abandoned(
    storage, tmp_path, isolated_mlflow, capsys
):
    """`abandoned` (what a run and `inspect` warn about) needs both a dead pid and a free
    lock; a folder of this process, or held by a writer, is not."""
    run = spooled_run(storage, tmp_path, isolated_mlflow, "owned")
    root = spool.spool_root(storage)
    assert abandoned.abandoned(root, isolated_mlflow) == [], "this test's own process is alive"

    as_if_written_by_a_process_that_exited(run.folder)
    (found,) = abandoned.abandoned(root, isolated_mlflow)
    assert found.run_id == run.run_id
    assert abandoned.abandoned(root, "sqlite:////elsewhere/mlflow.db") == []
    notice = abandoned.abandoned_notice(root, isolated_mlflow)
    assert notice.count("\n") == 0 and "python -m logistic_regression sync" in notice

    with ArtifactWriter(run.run_id, isolated_mlflow, storage):
        assert abandoned.abandoned(root, isolated_mlflow) == [], "a writer holds it again"
        code, out, err = sync_cli(capsys)
        assert code == 0 and "busy" in out


def test_state_of_a_runs_artifacts():
    assert artifact_state.state_of(pending=2, sealed=True, logged=5) == "pending"
    assert artifact_state.state_of(pending=0, sealed=True, logged=5) == "complete"
    assert artifact_state.state_of(pending=0, sealed=False, logged=5) == "partial"
    assert artifact_state.state_of(pending=0, sealed=False, logged=0) == "none"


def test_a_line_cut_by_a_crash_never_swallows_the_next(storage, tmp_path, isolated_mlflow):
    run = spooled_run(storage, tmp_path, isolated_mlflow, "cut")
    journal = run.folder / "journal.jsonl"
    with journal.open("a") as handle:
        handle.write('{"event": "queued", "id": 9, "so')  # a SIGKILL mid-line
    assert Journal.read(run.folder).damaged == 0, "a cut last line is simply not there"
    with ArtifactWriter(run.run_id, isolated_mlflow, storage) as writer:
        assert writer.flush(timeout=60).complete
        folder = writer.folder
    assert not folder.exists()


def test_store_keys_compare_the_same_store_in_any_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = f"sqlite:///{tmp_path}/mlflow.db"
    assert spool.store_key("sqlite:///mlflow.db") == spool.store_key(absolute)
    assert spool.store_key("sqlite:///./sub/../mlflow.db") == spool.store_key(absolute)
    assert spool.store_key("mlruns") == spool.store_key(str(tmp_path / "mlruns") + "/")
    assert spool.store_key("http://u:secret@host:5000/") == "http://***@host:5000"
    assert spool.store_key("sqlite:///other.db") != spool.store_key(absolute)


def test_a_locked_store_is_one_line_and_every_folder_kept(
    storage, tmp_path, isolated_mlflow, capsys
):
    import sqlite3

    run = spooled_run(storage, tmp_path, isolated_mlflow, "locked")
    before = run.contents()
    holder = sqlite3.connect(isolated_mlflow.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, out, err = sync_cli(capsys, "tracking.timeout_s=1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and out == ""
    assert "is locked: another process held it for 1 s" in one_line(err)
    assert run.contents() == before
    code, _, _ = sync_cli(capsys)
    assert code == 0
    assert_synced(run)


def test_sync_all_never_sends_the_login_to_a_server_a_journal_names(
    storage, tmp_path, isolated_mlflow, monkeypatch, capsys
):
    """A spool folder planted to name another server (here a real HTTP server that
    records every request): `sync --all` with a login in the environment lists it and
    sends that server nothing; this store's own folders are synced as ever."""
    import http.server
    import threading

    seen: list[tuple[str, str | None]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST = _record

        def log_message(self, *args) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=listener.serve_forever, args=(0.05,), daemon=True).start()
    elsewhere = f"http://127.0.0.1:{listener.server_address[1]}"
    try:
        mine = spooled_run(storage, tmp_path, isolated_mlflow, "mine")
        planted = spooled_run(storage, tmp_path, isolated_mlflow, "planted")
        journal = planted.folder / "journal.jsonl"
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        for record in lines:
            if "tracking_uri" in record:
                record["tracking_uri"] = elsewhere
        journal.write_text("".join(json.dumps(record) + "\n" for record in lines))
        before = planted.contents()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "alices-password-canary")

        code, out, err = sync_cli(capsys, "--all")
    finally:
        listener.shutdown()
        listener.server_close()
    assert seen == [], "the other server heard from sync"
    assert code == 0 and err == "", err
    assert f"its tracking store {elsewhere} is another server; not synced" in out
    assert planted.contents() == before
    assert_synced(mine)


@pytest.mark.parametrize("planted", ["absolute", "dotdot", "link"])
def test_sync_uploads_only_files_of_the_spool_folder_itself(
    storage, tmp_path, isolated_mlflow, planted, capsys
):
    """A journal entry naming a file outside its folder (an absolute path, `..`, or a
    link in the folder leading out) would make `sync` read someone's file and upload
    it to wherever the entry says: refused, nothing read or copied, the folder kept."""
    private = tmp_path / "private.txt"
    private.write_text("someone's private file")
    run = spooled_run(storage, tmp_path, isolated_mlflow, "planted")
    journal = run.folder / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    (queued,) = [r for r in records if r.get("event") == "queued"]
    if planted == "absolute":
        queued["source"] = str(private)
    elif planted == "dotdot":
        queued["source"] = "../" * len(run.folder.relative_to(tmp_path).parts) + "private.txt"
    else:
        (run.folder / queued["source"]).unlink()
        (run.folder / queued["source"]).symlink_to(private)
    queued["size"] = private.stat().st_size
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))

    code, out, err = sync_cli(capsys)

    assert code == 1
    assert "is not a file of its spool folder" in err or "not a path beneath" in err, err
    assert not run.store.exists() or not any(run.store.rglob("private*")), "nothing copied"
    stored = (
        [p.read_text() for p in run.store.rglob("*") if p.is_file()] if run.store.exists() else []
    )
    assert "someone's private file" not in stored
    assert run.folder.exists()


def test_under_mlflow_run_the_sync_run_records_what_it_did(tmp_path, monkeypatch, capsys):
    """`mlflow run . -e sync` makes a run for the command: it is named `sync` and says
    what the sync did, instead of staying an empty run with a random name."""
    run_id = recorded_run("sync-entry", "bold-fox-123", status=None)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    assert main(["sync", f"storage.spool_dir={tmp_path / 'spool-here'}"]) == 0
    run = MlflowClient().get_run(run_id)
    assert run.info.run_name == "sync"
    assert run.data.tags["kit.sync"] == "0 spool folder(s) synced, 0 left behind"
    assert run.data.tags["mlflow.note.content"].startswith("sync of the spool: 0 spool")


@pytest.mark.parametrize("given", [[], ["storage.spool_dir="]])
def test_sync_finds_the_spool_the_environment_names_when_none_is_given(
    given, tmp_path, monkeypatch, capsys
):
    """`mlflow run -e sync` passes `storage.spool_dir=` (empty) when its parameter is not
    given: that must not hide $LOGREG_SPOOL_DIR, where the runs left their files."""
    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(tmp_path / "custom-spool"))
    assert main(["sync", *given]) == 0
    assert f"nothing to sync in {tmp_path / 'custom-spool'}" in capsys.readouterr().out
