"""Content-addressed artifact storage: each model file or folder lives under its sha256.

Layout: `<root>/sha256/<hex[:2]>/<hex>/<original name>`. The original name is kept
because flavors recognise artifacts by suffix (`model.onnx`, `model.joblib`).

A file's sha256 is the sha256 of its bytes. A folder's is the sha256 of a canonical
listing: the line `foretell-tree-v1`, then one line per regular file, sorted by its
relative POSIX path, of the form `<path>\\0<file sha256>`, each line ending in `\\n`.
Empty folders carry no content and so do not count.

Readers never see half an artifact: a copy is written into a temporary folder inside
the root, fsynced, and moved into place with one rename (`os.replace`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

from foretell.errors import ArtifactIntegrityError, RegistryError

__all__ = ["CHUNK_SIZE", "ArtifactStore", "StoredArtifact", "content_sha256", "hash_file", "hash_tree"]

CHUNK_SIZE = 1 << 20
_TREE_HEADER = b"foretell-tree-v1\n"
_INCOMING = ".incoming-"


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An artifact in the store: its address, its size, and where it sits relative to the root."""

    sha256: str
    size_bytes: int
    relative_path: str


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        _pump(source, digest, None)
    return digest.hexdigest()


def hash_tree(folder: Path) -> str:
    return _tree_digest((rel, hash_file(folder / rel)) for rel in _tree_files(folder))


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's canonical listing."""
    return hash_tree(path) if path.is_dir() else hash_file(path)


class ArtifactStore:
    """Artifacts under `root` (normally `<home>/artifacts`), addressed by content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, relative_path: str) -> Path:
        return self.root / relative_path

    def put(self, source: Path) -> StoredArtifact:
        """Copy `source` in (hashing while copying, so the hash is of what was stored)."""
        # A link's own name is kept (flavors read the suffix); its target's content is what is copied.
        name = source.name or source.resolve().name
        source = _checked_source(source)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=self.root))
        try:
            staged = staging / name
            if source.is_dir():
                sha256, size = _copy_tree(source, staged)
            else:
                sha256, size = _copy_file(source, staged)
            relative = f"sha256/{sha256[:2]}/{sha256}/{name}"
            self._place(staged, self.root / relative, sha256, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return StoredArtifact(sha256, size, relative)

    def verify(self, path: Path, sha256: str, *, label: str | None = None) -> None:
        """Raise `ArtifactIntegrityError` unless `path` still hashes to `sha256`."""
        what = label or path.name
        if not path.exists():
            raise ArtifactIntegrityError(
                f"artifact {what} is missing: expected it at {path} (sha256 {sha256}); "
                f"something outside foretell removed it"
            )
        actual = content_sha256(path)
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {what} at {path} was modified after registration: expected sha256 {sha256}, "
                f"found {actual}; refusing to load it (register it again from a copy you trust)"
            )

    def withdraw(self, relative_path: str) -> Path | None:
        """Move an artifact out of sight in one rename; `restore` or `purge` the returned place."""
        target = self.root / relative_path
        if not target.exists():
            return None
        staging = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=self.root))
        target.replace(staging / target.name)
        return staging

    def restore(self, withdrawn: Path, relative_path: str) -> None:
        target = self.root / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        (withdrawn / target.name).replace(target)
        shutil.rmtree(withdrawn, ignore_errors=True)

    def purge(self, withdrawn: Path, relative_path: str) -> None:
        shutil.rmtree(withdrawn, ignore_errors=True)
        # Drop the now-empty <hex> and <hex[:2]> folders; rmdir refuses if another artifact lives there.
        folder = (self.root / relative_path).parent
        for empty in (folder, folder.parent):
            try:
                empty.rmdir()
            except OSError:
                break

    def _place(self, staged: Path, target: Path, sha256: str, staging: Path) -> None:
        if target.exists():
            try:
                self.verify(target, sha256)
                return  # the same content is already stored
            except ArtifactIntegrityError:
                target.replace(staging / ".damaged")  # swap a tampered copy for the fresh one
        for _ in range(3):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staged.replace(target)
            except FileNotFoundError:
                continue  # a concurrent purge removed the empty parent folder between mkdir and rename
            except OSError:
                if target.is_dir():
                    return  # another process placed the same content first (a folder cannot be replaced)
                raise
            _fsync_folder(target.parent)
            return
        raise RegistryError(f"could not move artifact {target.name} into {target.parent}: the folder kept disappearing")


def _checked_source(source: Path) -> Path:
    if not source.exists():
        raise RegistryError(f"cannot register {source}: no such file or folder")
    source = source.resolve()
    if not (source.is_file() or source.is_dir()):
        raise RegistryError(f"cannot register {source}: it is neither a regular file nor a folder")
    return source


def _tree_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every file under `folder`, sorted; refuses what cannot be copied faithfully."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise RegistryError(
                    f"{folder.name} holds {here / name}, a link to a folder; copy the folder in instead"
                )
        for name in filenames:
            path = here / name
            if not path.is_file():
                raise RegistryError(f"{folder.name} holds {path}, which is not a regular file (or is a broken link)")
            found.append(path.relative_to(folder).as_posix())
    if not found:
        raise RegistryError(f"cannot register folder {folder}: it holds no files")
    return sorted(found)


def _tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256(_TREE_HEADER)
    for rel, file_sha in sorted(entries):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + file_sha.encode("ascii") + b"\n")
    return digest.hexdigest()


def _copy_tree(source: Path, target: Path) -> tuple[str, int]:
    entries: list[tuple[str, str]] = []
    total = 0
    for rel in _tree_files(source):
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        file_sha, size = _copy_file(source / rel, destination)
        entries.append((rel, file_sha))
        total += size
    for dirpath, _, _ in os.walk(target):
        _fsync_folder(Path(dirpath))
    return _tree_digest(entries), total


def _copy_file(source: Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("xb") as writer:
        size = _pump(reader, digest, writer)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def _pump(reader: io.BufferedReader, digest: _Hash, writer: io.BufferedWriter | None) -> int:
    """Hash (and optionally copy) a stream one chunk at a time, so a big file never sits in memory."""
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    total = 0
    while n := reader.readinto(view):
        chunk = view[:n]
        digest.update(chunk)
        if writer is not None:
            writer.write(chunk)
        total += n
    return total


def _fsync_folder(folder: Path) -> None:
    # A rename is only durable once its folder is synced; Windows cannot open folders for that.
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
