"""Local files and cross-store copy with sha256 verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlport import IntegrityError, InvalidSpecError, NotFoundError, storage


def test_copy_directory_between_local_paths(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a").write_bytes(b"a" * 2_500_000)
    (src / "d" / "b").write_text("b")
    written = storage.copy(f"file://{src}", f"file://{tmp_path / 'dst'}")
    assert sorted(written) == [
        f"file://{tmp_path / 'dst' / 'a'}",
        f"file://{tmp_path / 'dst' / 'd' / 'b'}",
    ]
    assert (tmp_path / "dst" / "a").read_bytes() == b"a" * 2_500_000
    assert not list(tmp_path.rglob("*.partial"))


def test_copy_missing_source(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nothing at"):
        storage.copy(str(tmp_path / "nope"), str(tmp_path / "x"))


def test_copy_refuses_a_uri_the_store_does_not_serve(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match="s3://bucket/x"):
        storage.copy("s3://bucket/x", str(tmp_path / "x"))


def test_corruption_in_transit_is_caught(tmp_path: Path) -> None:
    from mlport.storage import LocalFiles, local_files

    class Lossy(LocalFiles):
        def _write(self, uri, chunks):  # type: ignore[no-untyped-def]
            super()._write(uri, (c[:-1] for c in chunks))

    lossy = Lossy(local_files().provider)
    (tmp_path / "f").write_bytes(b"payload")
    with pytest.raises(IntegrityError, match="corrupt"):
        storage.copy(str(tmp_path / "f"), str(tmp_path / "g"), dest=lossy)
