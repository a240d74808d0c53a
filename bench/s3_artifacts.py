"""Asynchronous artifact writing against a real S3 server, measured side by side.

Starts a SeaweedFS S3 server on 127.0.0.1 (the test suite's `tests/servers.py`), then for
two workloads, one 200 MB file and 200 files of 100 kB:

(a) blocked time: how long the training thread waits while logging, with the kit's
    `ArtifactWriter.log_file` (a kernel copy into the spool, then queued) versus
    synchronous `MlflowClient.log_artifact` into an S3-backed run. Target: <= 5% of
    synchronous.
(b) drain throughput: bytes / (first log call -> `flush` done, every object verified)
    versus raw boto3 `upload_file` of the same files with the same concurrency and
    multipart settings (each file on its own thread, as a user script would). Target:
    >= 80% of raw boto3.

Each measurement alternates between the contenders; medians over --repeats.

    python bench/s3_artifacts.py [--repeats 3] [--big-mb 200] [--small-count 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "tests"))

BLOCKED_TARGET = 0.05
THROUGHPUT_TARGET = 0.80


def make_workloads(folder: Path, big_mb: int, small_count: int) -> dict[str, list[Path]]:
    big = folder / "big" / "big.bin"
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        for _ in range(big_mb):
            handle.write(os.urandom(1024 * 1024))
    smalls = []
    (folder / "small").mkdir()
    for n in range(small_count):
        path = folder / "small" / f"part-{n:04d}.bin"
        path.write_bytes(os.urandom(100 * 1024))
        smalls.append(path)
    return {f"1 x {big_mb} MB": [big], f"{small_count} x 100 kB": smalls}


def settle(seconds: float = 1.0) -> None:
    """Let the store finish writing what the previous contender sent (same machine): flush
    dirty pages to disk, so no contender pays for another's write-back."""
    os.sync()
    time.sleep(seconds)


def log_synchronously(client, experiment: str, files: list[Path]) -> float:
    """Seconds the caller is blocked by `MlflowClient.log_artifact`, file by file."""
    run_id = client.create_run(experiment).info.run_id
    started = time.perf_counter()
    for path in files:
        client.log_artifact(run_id, str(path))
    blocked = time.perf_counter() - started
    client.set_terminated(run_id)
    return blocked


def log_asynchronously(client, experiment, files, storage, tracking_uri) -> tuple[float, float]:
    """(seconds blocked in `log_file`, seconds until `flush` has every object verified)."""
    from logistic_regression.storage.writer import ArtifactWriter

    run_id = client.create_run(experiment).info.run_id
    artifact_root = client.get_run(run_id).info.artifact_uri
    with ArtifactWriter(run_id, tracking_uri, storage) as writer:
        settle()  # in a run the writer opens at the start, long before the first file
        started = time.perf_counter()
        for path in files:
            writer.log_file(path, artifact_root)
        blocked = time.perf_counter() - started
        result = writer.flush()
        drained = time.perf_counter() - started
    client.set_terminated(run_id)
    if not result.complete:
        raise SystemExit(f"uploads did not complete: {result.errors[:3]}")
    return blocked, drained


def upload_raw(raw, files: list[Path], prefix: str, transfer, workers: int) -> float:
    """Seconds for plain boto3 `upload_file` of the same files, `workers` at a time."""

    def upload(path: Path) -> None:
        raw.upload_file(str(path), "bench", f"{prefix}/{path.name}", Config=transfer)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(upload, files))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--small-count", type=int, default=200)
    args = parser.parse_args()

    import mlflow
    from boto3.s3.transfer import TransferConfig
    from mlflow.tracking import MlflowClient
    from servers import S3Server

    from logistic_regression.storage import s3
    from logistic_regression.train import compose_config

    storage = compose_config(["storage=s3", "storage.bucket=bench"]).storage
    mb = 1024 * 1024
    transfer = TransferConfig(
        multipart_threshold=storage.multipart_threshold_mb * mb,
        multipart_chunksize=storage.multipart_chunksize_mb * mb,
        max_concurrency=storage.upload_workers,
    )
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as scratch:
        root = Path(scratch)
        server = S3Server(root / "seaweedfs")
        try:
            server.start(buckets=("bench",))
            os.environ.update(server.environment())
            storage = dataclasses.replace(storage, spool_dir=str(root / "spool"), progress=False)
            mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
            client = MlflowClient()
            experiment = client.create_experiment("bench", artifact_location="s3://bench/mlflow")
            workloads = make_workloads(root / "files", args.big_mb, args.small_count)
            raw = s3.client(pool_size=storage.upload_workers * 2 + 2)
            raw.put_object(Bucket="bench", Key="warm-up", Body=os.urandom(4 * mb))

            print(
                f"S3: SeaweedFS on 127.0.0.1, {storage.upload_workers} upload workers, "
                f"multipart above {storage.multipart_threshold_mb} MB in "
                f"{storage.multipart_chunksize_mb} MB parts; {args.repeats} repeats"
            )
            failures = 0
            for label, files in workloads.items():
                size = sum(p.stat().st_size for p in files)
                blocked = {"sync": [], "kit": []}
                drain = {"raw": [], "kit": []}
                for repeat in range(args.repeats):
                    settle()
                    blocked["sync"].append(log_synchronously(client, experiment, files))
                    settle()
                    took, drained = log_asynchronously(
                        client, experiment, files, storage, mlflow.get_tracking_uri()
                    )
                    blocked["kit"].append(took)
                    drain["kit"].append(drained)
                    settle()
                    prefix = f"raw/{repeat}/{len(files)}"
                    drain["raw"].append(
                        upload_raw(raw, files, prefix, transfer, storage.upload_workers)
                    )

                block = {k: statistics.median(v) for k, v in blocked.items()}
                drained = {k: statistics.median(v) for k, v in drain.items()}
                blocked_ratio = block["kit"] / block["sync"]
                throughput_ratio = drained["raw"] / drained["kit"]
                print(f"\n{label} ({size / mb:.0f} MB)")
                print(f"  synchronous log_artifact blocks {block['sync'] * 1000:8.1f} ms")
                print(f"  raw boto3 upload_file drains    {size / mb / drained['raw']:8.1f} MB/s")
                print(
                    f"  kit log_file: blocked {block['kit'] * 1000:7.1f} ms "
                    f"= {blocked_ratio:.3f} of sync (target <= {BLOCKED_TARGET}); "
                    f"drain {size / mb / drained['kit']:6.1f} MB/s "
                    f"= {throughput_ratio:.2f} of raw (target >= {THROUGHPUT_TARGET})"
                )
                failures += blocked_ratio > BLOCKED_TARGET
                failures += throughput_ratio < THROUGHPUT_TARGET
            print("\nall targets met" if not failures else f"\n{failures} target(s) missed")
            return 0 if not failures else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
