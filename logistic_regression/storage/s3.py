"""The S3 edge: read `s3://bucket/key` objects, check buckets, and upload artifacts.

The endpoint is MLFLOW_S3_ENDPOINT_URL (as for MLflow's own S3 artifacts), else AWS's.
Credentials come only from boto3's standard chain (environment, profile); the kit never
reads, logs or prints them. Every failure becomes one line naming the URI.

The settings MLflow's own S3 artifact repository honours apply here too, so a team's
MLflow S3 configuration works unchanged: MLFLOW_S3_IGNORE_TLS (no certificate check),
MLFLOW_S3_UPLOAD_EXTRA_ARGS (JSON, passed to every upload as ExtraArgs, e.g. SSE-KMS or
Metadata), MLFLOW_S3_EXPECTED_BUCKET_OWNER, MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE, and a
Content-Type (and Content-Encoding) guessed from the file name by `mimetypes`, as MLflow
does (report.html is served as text/html).

Uploads (`Transfers`) go through one s3transfer TransferManager per process: at most
`budget` transfer requests (whole PUTs or parts) in flight, over a connection pool sized
for them plus one verification request per uploading thread.

What a verified object guarantees, on any bucket (SSE-S3, SSE-KMS, SSE-C or none):
every PUT and part carries a CRC32 (or the ChecksumAlgorithm MLFLOW_S3_UPLOAD_EXTRA_ARGS
names) that botocore computes from the bytes as it streams them, and the store rejects a
request whose bytes do not match it (BadDigest; the upload is retried). The store's
answer (PutObject, or CompleteMultipartUpload with the composite `<crc>-<parts>`) is
kept; a single PUT answered with its checksum is verified by that answer, a multipart
upload by a HEAD (ChecksumMode=ENABLED) that must show the expected size and the same
checksum. A store that answers with no checksum at all (no flexible-checksum support) is
verified by HEAD: the expected size and the ETag the upload returned (the object is the
one this upload wrote). The ETag is never recomputed from the bytes (it is not an MD5 on
SSE-KMS/SSE-C buckets), and no file is read again to verify.
"""

from __future__ import annotations

import json
import mimetypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logistic_regression.errors import DataError, KitError, StorageError, first_line

ENDPOINT_VARIABLE = "MLFLOW_S3_ENDPOINT_URL"
IGNORE_TLS_VARIABLE = "MLFLOW_S3_IGNORE_TLS"
EXTRA_ARGS_VARIABLE = "MLFLOW_S3_UPLOAD_EXTRA_ARGS"
BUCKET_OWNER_VARIABLE = "MLFLOW_S3_EXPECTED_BUCKET_OWNER"
ADDRESSING_VARIABLE = "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"
CHECKSUM_ALGORITHM = "CRC32"  # MLFLOW_S3_UPLOAD_EXTRA_ARGS may choose another
CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
# Upload arguments a HEAD of the object needs too (an SSE-C key, a bucket owner).
HEAD_ARGS = (
    "SSECustomerAlgorithm",
    "SSECustomerKey",
    "SSECustomerKeyMD5",
    "ExpectedBucketOwner",
    "RequestPayer",
)


@dataclass(frozen=True)
class S3Object:
    uri: str
    body: bytes
    etag: str
    version_id: str | None


VERSION_QUERY = "?versionId="


def split_uri(uri: str) -> tuple[str, str]:
    bucket, key, _ = parse_uri(uri)
    return bucket, key


def parse_uri(uri: str) -> tuple[str, str, str | None]:
    """`s3://bucket/key` or `s3://bucket/key?versionId=V` -> (bucket, key, version)."""
    location, _, version = uri.partition(VERSION_QUERY)
    bucket, _, key = location.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DataError(f"{uri!r} is not an object URI; use s3://bucket/path/to/file.csv")
    return bucket, key, version or None


def versioned_uri(uri: str, version: str) -> str:
    """The URI that names exactly this version of the object."""
    return f"{uri.partition(VERSION_QUERY)[0]}{VERSION_QUERY}{version}"


def endpoint() -> str | None:
    return os.environ.get(ENDPOINT_VARIABLE) or None


def ignore_tls() -> bool:
    """MLFLOW_S3_IGNORE_TLS=true (or 1): do not check the endpoint's certificate."""
    return os.environ.get(IGNORE_TLS_VARIABLE, "").strip().lower() in ("true", "1")


def bucket_owner() -> dict[str, str]:
    owner = os.environ.get(BUCKET_OWNER_VARIABLE)
    return {"ExpectedBucketOwner": owner} if owner else {}


def upload_args(name: str) -> dict:
    """ExtraArgs for uploading a file called `name`, built as MLflow's S3 repository
    builds them: guessed Content-Type/Encoding, the expected bucket owner, then
    MLFLOW_S3_UPLOAD_EXTRA_ARGS on top; plus the CRC32 request checksum."""
    args: dict = {"ChecksumAlgorithm": CHECKSUM_ALGORITHM}
    content_type, encoding = mimetypes.guess_type(name)
    if content_type:
        args["ContentType"] = content_type
    if encoding:
        args["ContentEncoding"] = encoding
    args.update(bucket_owner())
    if extra := os.environ.get(EXTRA_ARGS_VARIABLE):
        try:
            args.update(json.loads(extra))
        except json.JSONDecodeError as exc:
            raise StorageError(f"{EXTRA_ARGS_VARIABLE} is not valid JSON: {exc.msg}") from None
    return args


def client(max_attempts: int = 3, pool_size: int = 10, read_timeout: float = 60.0):
    """An S3 client for the configured endpoint, honouring MLflow's S3 settings; each
    socket read waits at most `read_timeout` s (the pre-run checks bound it by the
    configured wait, tracking.timeout_s)."""
    import boto3
    from botocore.config import Config

    # A fresh session each time: boto3's default session caches the credentials it
    # found first, and a user who fixes AWS_* between calls expects the new ones.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint(),
        verify=False if ignore_tls() else None,
        config=Config(
            connect_timeout=min(5.0, read_timeout),
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=pool_size,
            s3={"addressing_style": os.environ.get(ADDRESSING_VARIABLE) or "auto"},
        ),
    )


class Transfers:
    """Uploads files to S3 and verifies them (see the module docstring): one
    TransferManager, `budget` requests in flight, `verifiers` threads that may HEAD."""

    def __init__(self, budget: int, verifiers: int, threshold: int, chunk: int) -> None:
        from s3transfer.manager import TransferConfig, TransferManager

        self.client = client(max_attempts=2, pool_size=budget + verifiers)
        self._answers: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()
        events = self.client.meta.events
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"provide-client-params.s3.{operation}", _name_request)
            events.register(f"after-call.s3.{operation}", self._keep_answer)
        self.manager = TransferManager(
            self.client,
            TransferConfig(
                multipart_threshold=threshold,
                multipart_chunksize=chunk,
                max_request_concurrency=budget,
            ),
        )

    def upload(self, local: Path, uri: str, size: int, progress: Callable[[int], None]) -> None:
        """Upload `local` to `uri` and prove it is stored; raises on any failure."""
        from s3transfer.subscribers import BaseSubscriber

        class Progress(BaseSubscriber):
            def on_progress(self, future, bytes_transferred, **kwargs):
                progress(bytes_transferred)

        bucket, key = split_uri(uri)
        with self._lock:
            self._answers.pop((bucket, key), None)
        future = self.manager.upload(
            str(local), bucket, key, extra_args=upload_args(key), subscribers=[Progress()]
        )
        future.result()
        with self._lock:
            answer = self._answers.pop((bucket, key), {})
        self.verify(bucket, key, size, answer)

    def verify(self, bucket: str, key: str, size: int, answer: dict) -> None:
        sent = _checksum(answer)
        if sent and answer.get("operation") == "PutObject":  # checked and answered by the store
            return
        head_args = {k: v for k, v in upload_args(key).items() if k in HEAD_ARGS}
        head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **head_args)
        if head["ContentLength"] != size:
            raise OSError(f"verify: {head['ContentLength']} bytes stored, {size} sent")
        stored = _checksum(head)
        if sent or stored:
            if stored != sent:
                raise OSError(f"verify: the stored checksum {stored} is not the uploaded {sent}")
        elif head.get("ETag") != answer.get("ETag"):
            raise OSError("verify: the stored object is not the one this upload wrote")

    def close(self) -> None:
        self.manager.shutdown(cancel=True)

    def _keep_answer(self, http_response, parsed, model, context, **kwargs) -> None:
        target = context.get("kit_target")
        if target is not None and http_response.status_code < 300:
            with self._lock:
                self._answers[target] = {**parsed, "operation": model.name}


def _name_request(params, context, **kwargs) -> None:
    """Tag the request with its object, so its answer can be matched to the upload."""
    context["kit_target"] = (params.get("Bucket"), params.get("Key"))


def _checksum(response: dict) -> str:
    """The flexible checksum a response carries (`<algorithm>:<value>`), or ""."""
    for algorithm in CHECKSUMS:
        if value := response.get(f"Checksum{algorithm}"):
            return f"{algorithm}:{value}"
    return ""


def _explain(uri: str, exc: Exception, error: type[KitError] = DataError) -> KitError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return error(
            f"{uri}: no S3 credentials found (set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or an AWS profile)"
        )
    if isinstance(exc, EndpointConnectionError):
        return error(f"{uri}: cannot reach the S3 endpoint {endpoint() or 'of AWS'}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return error(f"{uri}: the bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound"):
            return error(f"{uri}: no such object")
        if code in ("NoSuchVersion", "InvalidArgument") and VERSION_QUERY in uri:
            return error(f"{uri}: no such version of the object")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return error(f"{uri}: access denied with the current S3 credentials ({code})")
        return error(f"{uri}: S3 error {code}: {first_line(exc)}")
    return error(f"{uri}: {first_line(exc)}")


def unreadable(uri: str, exc: Exception) -> KitError:
    """An S3 read that failed, in one line, saying which endpoint was asked: without
    MLFLOW_S3_ENDPOINT_URL (or storage.endpoint) boto3 goes to AWS's public one."""
    problem = _explain(uri, exc, StorageError)
    if endpoint():
        return problem
    return StorageError(
        f"{problem}; MLFLOW_S3_ENDPOINT_URL is not set, so this asked AWS's public endpoint "
        "(set it to your S3 store's URL)"
    )


def get_object(uri: str, timeout_s: float = 60.0) -> S3Object:
    """Read a whole object (tables the kit trains on fit in memory) with its ETag/version;
    an endpoint that stops answering is given up after `timeout_s` per read, twice."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key, version = parse_uri(uri)
    try:
        extra = {"VersionId": version} if version else {}
        reader = client(max_attempts=2, read_timeout=timeout_s)
        response = reader.get_object(Bucket=bucket, Key=key, **extra, **bucket_owner())
        body = response["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise _explain(uri, exc) from None
    version = response.get("VersionId")
    return S3Object(
        uri=uri,
        body=body,
        etag=response.get("ETag", "").strip('"'),
        version_id=None if version in (None, "null") else version,
    )


def check_bucket(uri: str, timeout_s: float = 60.0) -> None:
    """Refuse, before any work, a bucket that is missing or that these credentials cannot
    write: a cheap HEAD on the bucket, given up after `timeout_s` (an endpoint that
    accepts connections and never answers cost minutes of boto3's retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = uri.removeprefix("s3://").partition("/")[0]
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket; use s3://bucket/prefix/")
    try:
        client(max_attempts=1, read_timeout=timeout_s).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        explained = _explain(f"s3://{bucket}", exc, StorageError)
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "404":
            explained = StorageError(f"s3://{bucket}: the bucket does not exist")
        raise explained from None
