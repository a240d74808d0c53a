"""Object storage edge: read `s3://bucket/key` objects from any S3-compatible store.

The endpoint is MLFLOW_S3_ENDPOINT_URL (as for MLflow's own S3 artifacts), else AWS's.
Credentials come only from boto3's standard chain (environment, profile); the kit never
reads, logs or prints them. Every failure becomes one line naming the URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from logistic_regression.errors import DataError, first_line

ENDPOINT_VARIABLE = "MLFLOW_S3_ENDPOINT_URL"


@dataclass(frozen=True)
class S3Object:
    uri: str
    body: bytes
    etag: str
    version_id: str | None


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DataError(f"{uri!r} is not an object URI; use s3://bucket/path/to/file.csv")
    return bucket, key


def client():
    import boto3
    from botocore.config import Config

    # A fresh session each time: boto3's default session caches the credentials it
    # found first, and a user who fixes AWS_* between calls expects the new ones.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ.get(ENDPOINT_VARIABLE) or None,
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
    )


def _explain(uri: str, exc: Exception) -> DataError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return DataError(
            f"{uri}: no S3 credentials found (set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or an AWS profile)"
        )
    if isinstance(exc, EndpointConnectionError):
        endpoint = os.environ.get(ENDPOINT_VARIABLE) or "AWS"
        return DataError(f"{uri}: cannot reach the S3 endpoint {endpoint}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return DataError(f"{uri}: the bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound"):
            return DataError(f"{uri}: no such object")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return DataError(f"{uri}: access denied with the current S3 credentials ({code})")
        return DataError(f"{uri}: S3 error {code}: {first_line(exc)}")
    return DataError(f"{uri}: {first_line(exc)}")


def get_object(uri: str) -> S3Object:
    """Read a whole object (tables the kit trains on fit in memory) with its ETag/version."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_uri(uri)
    try:
        response = client().get_object(Bucket=bucket, Key=key)
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
