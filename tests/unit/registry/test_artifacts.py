"""The content-addressed artifact store: stable hashes, atomic placement, tamper detection."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from foretell.errors import ArtifactIntegrityError, RegistryError
from foretell.registry.artifacts import CHUNK_SIZE, ArtifactStore, content_sha256, hash_file, hash_tree


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


TREE = {"model.py": b"class M: ...\n", "weights/a.bin": b"\x00\x01" * 100, "weights/b.bin": b"b", "README": b""}


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _leftovers(store: ArtifactStore) -> list[str]:
    return [p.name for p in store.root.iterdir() if p.name.startswith(".incoming-")] if store.root.exists() else []


def test_file_hash_is_the_sha256_of_its_bytes_across_chunk_boundaries(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) == hashlib.sha256(data).hexdigest()
    assert content_sha256(path) == hash_file(path)


def test_folder_hash_is_deterministic_and_independent_of_folder_name_and_creation_order(tmp_path: Path) -> None:
    first = _write_tree(tmp_path / "one", TREE)
    second = _write_tree(tmp_path / "two", dict(reversed(list(TREE.items()))))
    os.utime(second / "model.py", (0, 0))
    assert hash_tree(first) == hash_tree(second) == content_sha256(first)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "weights/b.bin").write_bytes(b"c"),
        lambda root: (root / "weights/b.bin").rename(root / "weights/c.bin"),
        lambda root: (root / "extra.txt").write_bytes(b""),
        lambda root: (root / "README").unlink(),
    ],
    ids=["content", "rename", "added", "removed"],
)
def test_any_change_to_a_folder_changes_its_hash(tmp_path: Path, change: object) -> None:
    root = _write_tree(tmp_path / "model", TREE)
    before = hash_tree(root)
    change(root)  # type: ignore[operator]
    assert hash_tree(root) != before


def test_empty_subfolders_do_not_count(tmp_path: Path) -> None:
    root = _write_tree(tmp_path / "model", TREE)
    before = hash_tree(root)
    (root / "empty").mkdir()
    assert hash_tree(root) == before


def test_put_file_keeps_its_name_under_its_hash(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights")
    stored = store.put(source)
    digest = hashlib.sha256(b"weights").hexdigest()
    assert stored.sha256 == digest
    assert stored.size_bytes == 7
    assert stored.relative_path == f"sha256/{digest[:2]}/{digest}/model.joblib"
    assert store.path_of(stored.relative_path).read_bytes() == b"weights"
    assert _leftovers(store) == []


def test_putting_the_same_content_again_reuses_it(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights")
    first = store.put(source)
    second = store.put(source)
    assert first == second
    assert len(list((store.root / "sha256").rglob("model.joblib"))) == 1
    assert _leftovers(store) == []


def test_put_folder_copies_every_file(store: ArtifactStore, tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "bundle", TREE)
    stored = store.put(source)
    target = store.path_of(stored.relative_path)
    assert target.name == "bundle"
    assert stored.sha256 == hash_tree(source) == hash_tree(target)
    assert stored.size_bytes == sum(len(data) for data in TREE.values())
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == set(TREE)
    store.verify(target, stored.sha256)


def test_verify_names_the_artifact_and_both_hashes(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights")
    stored = store.put(source)
    target = store.path_of(stored.relative_path)
    target.write_bytes(b"weightz")
    with pytest.raises(ArtifactIntegrityError) as caught:
        store.verify(target, stored.sha256, label="churn/1")
    message = str(caught.value)
    assert "churn/1" in message
    assert stored.sha256 in message
    assert hashlib.sha256(b"weightz").hexdigest() in message


def test_verify_detects_a_file_added_to_a_stored_folder(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_write_tree(tmp_path / "bundle", TREE))
    target = store.path_of(stored.relative_path)
    (target / "sneaky.py").write_text("import os\n")
    with pytest.raises(ArtifactIntegrityError, match="modified after registration"):
        store.verify(target, stored.sha256)


def test_verify_reports_a_missing_artifact(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.verify(tmp_path / "gone.joblib", "0" * 64)


def test_put_repairs_a_damaged_stored_copy(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights")
    stored = store.put(source)
    store.path_of(stored.relative_path).write_bytes(b"tampered")
    assert store.put(source) == stored
    store.verify(store.path_of(stored.relative_path), stored.sha256)
    assert _leftovers(store) == []


@pytest.mark.skipif(os.name == "nt", reason="creating symlinks needs extra privileges on Windows")
def test_a_refused_folder_leaves_nothing_behind(store: ArtifactStore, tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "bundle", TREE)
    (source / "linked").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(RegistryError, match="a link to a folder"):
        store.put(source)
    assert _leftovers(store) == []
    assert not (store.root / "sha256").exists()


def test_an_empty_folder_or_a_missing_path_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="holds no files"):
        store.put(tmp_path / "empty")
    with pytest.raises(RegistryError, match="no such file or folder"):
        store.put(tmp_path / "nope.joblib")


def test_withdraw_then_purge_removes_the_artifact_and_its_empty_folders(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"weights")
    stored = store.put(source)
    withdrawn = store.withdraw(stored.relative_path)
    assert withdrawn is not None
    assert not store.path_of(stored.relative_path).exists()
    store.purge(withdrawn, stored.relative_path)
    assert list((store.root / "sha256").iterdir()) == []
    assert _leftovers(store) == []


def test_withdraw_then_restore_puts_it_back(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_write_tree(tmp_path / "bundle", TREE))
    withdrawn = store.withdraw(stored.relative_path)
    assert withdrawn is not None
    store.restore(withdrawn, stored.relative_path)
    store.verify(store.path_of(stored.relative_path), stored.sha256)
    assert _leftovers(store) == []


@pytest.mark.skipif(os.name == "nt", reason="creating symlinks needs extra privileges on Windows")
def test_a_linked_file_is_stored_under_the_link_name_with_the_target_content(
    store: ArtifactStore, tmp_path: Path
) -> None:
    real = tmp_path / "model-2024-05-01.bin"
    real.write_bytes(b"weights")
    (tmp_path / "model.joblib").symlink_to(real)
    stored = store.put(tmp_path / "model.joblib")
    target = store.path_of(stored.relative_path)
    assert target.name == "model.joblib"
    assert not target.is_symlink()
    assert target.read_bytes() == b"weights"
