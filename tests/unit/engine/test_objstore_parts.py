"""Object-storage pieces that need no server: locations, compression flags, masked errors,
and the tar stream of a directory dump."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from kubemigrate.engine.backup import objstore, tarstream
from kubemigrate.engine.backup.dump import compress_flag
from kubemigrate.engine.errors import BackupError, InvalidBackup, StorageDenied, UnsupportedOption


def test_s3_locations_parse_and_print_back() -> None:
    where = objstore.parse("s3://my-bucket/prod/orders/app.dump")
    assert (where.bucket, where.key) == ("my-bucket", "prod/orders/app.dump")
    assert str(where) == "s3://my-bucket/prod/orders/app.dump"
    assert where.sidecar_key == "prod/orders/app.dump.meta.json"
    assert objstore.is_remote("s3://b/x") and not objstore.is_remote(Path("/tmp/s3:/x"))


@pytest.mark.parametrize(
    "text",
    ["s3://", "s3://bucket", "s3://bucket/", "s3://Bad_Bucket/x", "s3://b/x", "s3://bkt/a//b",
     "s3://bkt/a/../b", "s3://bkt/dir/"],
)  # fmt: skip
def test_malformed_locations_are_refused(text: str) -> None:
    with pytest.raises(BackupError):
        objstore.parse(text)


@pytest.mark.parametrize(
    ("spec", "major", "flag"),
    [
        (None, 15, None),
        ("6", 15, "6"),
        ("gzip:9", 15, "9"),
        ("none", 15, "0"),
        ("zstd:3", 16, "zstd:3"),
        ("lz4", 17, "lz4"),
        ("gzip", 16, "gzip"),
    ],
)
def test_compression_matches_what_this_pg_dump_takes(
    spec: str | None, major: int, flag: str | None
) -> None:
    assert compress_flag(spec, major) == flag


@pytest.mark.parametrize(
    ("spec", "major"), [("zstd", 15), ("lz4:1", 14), ("brotli", 17), ("10", 16)]
)
def test_compression_this_pg_dump_lacks_is_refused(spec: str, major: int) -> None:
    with pytest.raises(UnsupportedOption):
        compress_flag(spec, major)


def test_errors_never_quote_credential_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t/Value+With=Chars")
    where = objstore.parse("s3://bkt/app.dump")
    raw = RuntimeError(
        "Server returned 403: <Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>"
        "AKIAEXAMPLEKEYID1234</AWSAccessKeyId> secret s3cr3t/Value+With=Chars\n\nDebug source: x"
    )
    err = objstore.storage_error(raw, where, "writing")
    assert isinstance(err, StorageDenied) and err.reason == "ObjectStoreAccessDenied"
    assert "SignatureDoesNotMatch" in str(err)
    assert "AKIAEXAMPLEKEYID1234" not in str(err) and "s3cr3t" not in str(err)
    assert "AKIAEXAMPLEKEYID1234" not in objstore.clean(raw) and "Debug" not in objstore.clean(raw)
    assert isinstance(
        objstore.storage_error(FileNotFoundError("x"), where, "reading"), InvalidBackup
    )


def test_a_directory_dump_survives_the_tar_stream(tmp_path: Path) -> None:
    source, target = tmp_path / "dump", tmp_path / "back"
    source.mkdir()
    target.mkdir()
    files = {"toc.dat": os.urandom(1000), "3001.dat.gz": os.urandom(3 << 20), "3002.dat.gz": b""}
    for name, data in files.items():
        (source / name).write_bytes(data)
    stream = list(tarstream.pack(source))
    assert max(len(p) for p in stream) <= 1 << 20
    tarstream.unpack(iter(stream), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files


def test_a_tar_stream_with_paths_outside_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidBackup):
        tarstream.unpack([buf.getvalue()], tmp_path)
    assert not (tmp_path.parent / "escape").exists()
