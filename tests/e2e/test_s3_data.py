"""Reading input from a real S3 server (SeaweedFS started by the test session)."""

import hashlib
import io

import pytest
from servers import free_port
from sklearn.datasets import load_breast_cancer

from logistic_regression.data import load
from logistic_regression.errors import DataError


@pytest.fixture(scope="module")
def cancer_csv() -> bytes:
    return load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()


def test_csv_and_parquet_objects_load_with_digest_and_etag(s3_env, cancer_csv):
    s3 = s3_env.client()
    s3.put_object(Bucket="kit", Key="data/cancer.csv", Body=cancer_csv)
    buffer = io.BytesIO()
    load_breast_cancer(as_frame=True).frame.to_parquet(buffer, index=False)
    s3.put_object(Bucket="kit", Key="data/cancer.parquet", Body=buffer.getvalue())

    from_csv = load("s3://kit/data/cancer.csv", "target")
    assert from_csv.ref.kind == "s3" and from_csv.ref.uri == "s3://kit/data/cancer.csv"
    assert from_csv.ref.digest == hashlib.sha256(cancer_csv).hexdigest()
    head = s3.head_object(Bucket="kit", Key="data/cancer.csv")
    assert from_csv.ref.etag == head["ETag"].strip('"')
    assert from_csv.features.shape == (569, 30)

    from_parquet = load("s3://kit/data/cancer.parquet", "target")
    assert from_parquet.ref.digest == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert from_parquet.features.equals(from_csv.features)


def test_missing_object_and_bucket_are_one_line(s3_env):
    with pytest.raises(DataError, match=r"^s3://kit/nothing.csv: no such object$"):
        load("s3://kit/nothing.csv", "target")
    with pytest.raises(DataError) as caught:
        load("s3://no-such-bucket/t.csv", "target")
    assert str(caught.value).startswith("s3://no-such-bucket/t.csv: ")
    assert "\n" not in str(caught.value)


def test_wrong_credentials_are_named_without_the_secret(s3_env, monkeypatch, cancer_csv):
    s3_env.client().put_object(Bucket="kit", Key="data/c.csv", Body=cancer_csv)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    with pytest.raises(DataError, match="access denied with the current S3 credentials") as caught:
        load("s3://kit/data/c.csv", "target")
    assert "wrong-secret-value" not in str(caught.value)
    assert s3_env.secret_key not in str(caught.value)


def test_unreachable_endpoint_is_named(s3_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    with pytest.raises(DataError, match=f"cannot reach the S3 endpoint {endpoint}"):
        load("s3://kit/data/cancer.csv", "target")


def test_a_run_on_s3_input_records_its_uri_digest_and_etag(s3_env, config, cancer_csv):
    import dataclasses

    from mlflow.tracking import MlflowClient

    from logistic_regression import pipeline

    s3_env.client().put_object(Bucket="kit", Key="runs/input.csv", Body=cancer_csv)
    uri = "s3://kit/runs/input.csv"
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, input=uri))
    summary = pipeline.run(config)
    run = MlflowClient().get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["input_path"] == uri
    assert run.data.params["input_digest"] == hashlib.sha256(cancer_csv).hexdigest()
    head = s3_env.client().head_object(Bucket="kit", Key="runs/input.csv")
    assert run.data.params["input_etag"] == head["ETag"].strip('"')
    (dataset_input,) = run.inputs.dataset_inputs
    assert uri in dataset_input.dataset.source
    secrets = (s3_env.secret_key, s3_env.access_key)
    assert not any(s in str(run.data.params) + str(run.data.tags) for s in secrets)


def test_a_version_of_an_object_is_read_by_its_version_id(s3_env, cancer_csv):
    from logistic_regression.storage.s3 import parse_uri, versioned_uri

    s3 = s3_env.client()
    s3.create_bucket(Bucket="versions")
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="versions", Key="c.csv", Body=cancer_csv)["VersionId"]
    s3.put_object(Bucket="versions", Key="c.csv", Body=cancer_csv + cancer_csv.splitlines(True)[1])
    uri = versioned_uri("s3://versions/c.csv", first)
    assert parse_uri(uri) == ("versions", "c.csv", first)
    assert versioned_uri(uri, "other").endswith("?versionId=other")
    old, newest = load(uri, "target"), load("s3://versions/c.csv", "target")
    assert old.ref.version == first and old.ref.digest == hashlib.sha256(cancer_csv).hexdigest()
    assert len(newest.features) == len(old.features) + 1


def test_reproduce_checks_an_s3_input_by_its_recorded_version_or_refuses_a_changed_key(
    s3_env, cancer_csv, tmp_path
):
    """Before any clone or run: a versioned input is read at the recorded VersionId (later
    uploads to the key do not matter); an unversioned key that changed is refused, naming
    the digests. The whole story through the CLI is in tests/e2e/test_git_and_reproduce.py."""
    from conftest import recorded_run
    from mlflow.tracking import MlflowClient

    from logistic_regression import provenance
    from logistic_regression.recorded import NotReproducible, check_data, read_recorded

    s3 = s3_env.client()
    s3.create_bucket(Bucket="replayed")
    s3.put_bucket_versioning(Bucket="replayed", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="replayed", Key="c.csv", Body=cancer_csv)["VersionId"]
    s3.put_object(Bucket="kit", Key="plain/c.csv", Body=cancer_csv)
    digest = hashlib.sha256(cancer_csv).hexdigest()
    tags = {
        provenance.SOURCE_NAME: f"file://{tmp_path}",
        provenance.GIT_COMMIT: "a" * 40,
        provenance.GIT_DIRTY: "false",
    }

    def recorded(uri: str, version: str | None):
        params = {"input_path": uri, "input_digest": digest}
        if version:
            params["input_version"] = version
        run_id = recorded_run("s3", uri, params, texts={"config.yaml": "seed: 1\n"}, tags=tags)
        return read_recorded(MlflowClient(), run_id, tmp_path)

    versioned = recorded("s3://replayed/c.csv", first)
    plain = recorded("s3://kit/plain/c.csv", None)
    changed = cancer_csv + cancer_csv.splitlines(True)[1]
    s3.put_object(Bucket="replayed", Key="c.csv", Body=changed)  # both keys move on
    s3.put_object(Bucket="kit", Key="plain/c.csv", Body=changed)

    check_data(versioned)  # the recorded version still has the recorded bytes
    with pytest.raises(NotReproducible, match=r"input s3://kit/plain/c.csv changed since run"):
        check_data(plain)


def test_compressed_csv_and_workbook_objects_load_with_the_digest_of_their_stored_bytes(
    s3_env, cancer_csv
):
    """Objects as stored: the digest is of the compressed (or workbook) bytes, the table
    the same as the plain CSV's; a Shift_JIS object is read with data.encoding."""
    import gzip

    import pandas as pd
    import zstandard

    from logistic_regression.formats import ReadOptions

    frame = load_breast_cancer(as_frame=True).frame
    book = io.BytesIO()
    frame.to_excel(book, index=False, sheet_name="cancer")
    japanese = frame.rename(columns={"target": "診断"}).to_csv(index=False).encode("cp932")
    objects = {
        "data/cancer.csv.gz": gzip.compress(cancer_csv),
        "data/cancer.csv.zst": zstandard.ZstdCompressor().compress(cancer_csv),
        "data/cancer.xlsx": book.getvalue(),
        "data/日本.csv.gz": gzip.compress(japanese),
    }
    s3 = s3_env.client()
    for key, body in objects.items():
        s3.put_object(Bucket="kit", Key=key, Body=body)
    plain = pd.read_csv(io.BytesIO(cancer_csv)).drop(columns="target").astype("float64")

    for key in ("data/cancer.csv.gz", "data/cancer.csv.zst", "data/cancer.xlsx"):
        loaded = load(f"s3://kit/{key}", "target")
        assert loaded.ref.kind == "s3"
        assert loaded.ref.digest == hashlib.sha256(objects[key]).hexdigest()
        assert loaded.features.equals(plain), key

    with pytest.raises(DataError, match="data.encoding=cp932$"):
        load("s3://kit/data/日本.csv.gz", "診断")
    loaded = load("s3://kit/data/日本.csv.gz", "診断", options=ReadOptions(encoding="cp932"))
    assert loaded.ref.digest == hashlib.sha256(objects["data/日本.csv.gz"]).hexdigest()
    assert loaded.target.name == "診断" and loaded.features.equals(plain)
