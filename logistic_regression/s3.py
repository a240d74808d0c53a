"""Object storage edge: read `s3://bucket/key` objects from any S3-compatible store.

The endpoint is MLFLOW_S3_ENDPOINT_URL (as for MLflow's own S3 artifacts), else AWS's.
Credentials come only from boto3's standard chain (environment, profile); the kit never
reads, logs or prints them. Every failure becomes one line naming the URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from logistic_regression.errors import DataError, KitError, StorageError, first_line

ENDPOINT_VARIABLE = "MLFLOW_S3_ENDPOINT_URL"


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


def use_endpoint(configured: str) -> None:
    """`storage.endpoint`, when set, becomes MLFLOW_S3_ENDPOINT_URL for this process, so
    MLflow's own S3 access and the kit's agree."""
    if configured:
        os.environ[ENDPOINT_VARIABLE] = configured


def client(max_attempts: int = 3, pool_size: int = 10, extra_checksums: bool = True):
    """An S3 client. `extra_checksums=False` drops boto3's default CRC32 on every request
    (the uploader verifies each object by its MD5-based ETag instead: one check, not two)."""
    import boto3
    from botocore.config import Config

    # A fresh session each time: boto3's default session caches the credentials it
    # found first, and a user who fixes AWS_* between calls expects the new ones.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint(),
        config=Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=pool_size,
            **(
                {}
                if extra_checksums
                else {
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                }
            ),
        ),
    )


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


def get_object(uri: str) -> S3Object:
    """Read a whole object (tables the kit trains on fit in memory) with its ETag/version."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key, version = parse_uri(uri)
    try:
        extra = {"VersionId": version} if version else {}
        response = client().get_object(Bucket=bucket, Key=key, **extra)
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


def check_bucket(uri: str) -> None:
    """Refuse, before any work, a bucket that is missing or that these credentials cannot
    write: a cheap HEAD on the bucket, with one retry."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = uri.removeprefix("s3://").partition("/")[0]
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket; use s3://bucket/prefix/")
    try:
        client(max_attempts=2).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        explained = _explain(f"s3://{bucket}", exc, StorageError)
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "404":
            explained = StorageError(f"s3://{bucket}: the bucket does not exist")
        raise explained from None
