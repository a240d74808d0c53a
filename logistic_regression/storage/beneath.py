"""Write a file beneath a folder without following a link the kit did not make.

A folder the kit writes into (the output folder, a local artifact store) may be shared,
or reachable by someone else: a symbolic link planted at `<output>/<run id>/` or at the
file's own name would make a plain `open()` write wherever it points. Here every part of
the path below the folder is opened with O_NOFOLLOW, one by one from the folder's own
descriptor, so a link anywhere below it is refused (OSError ELOOP/ENOTDIR) and nothing
is written through it. The folder itself is the user's choice and is taken as given.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def parts(relative: str) -> list[str]:
    """The components of a relative path; an absolute one or `..` is refused."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise OSError(errno.EINVAL, f"not a path beneath its folder: {relative!r}")
    return [part for part in path.parts if part != "."]


@contextmanager
def open_beneath(folder: Path, relative: str) -> Iterator[BinaryIO]:
    """`folder/relative` opened for writing (created, truncated), its folders made as
    needed; refused with OSError if any part below `folder` is a symbolic link."""
    names = parts(relative)
    folder.mkdir(parents=True, exist_ok=True)
    current = os.open(folder, _DIRECTORY & ~os.O_NOFOLLOW)
    try:
        for name in names[:-1]:
            try:
                os.mkdir(name, 0o777, dir_fd=current)
            except FileExistsError:
                pass
            try:
                below = os.open(name, _DIRECTORY, dir_fd=current)
            except OSError as exc:
                raise _refused(exc, folder, name) from None
            os.close(current)
            current = below
        try:
            descriptor = os.open(names[-1], _FILE, 0o666, dir_fd=current)
        except OSError as exc:
            raise _refused(exc, folder, relative) from None
    finally:
        os.close(current)
    with os.fdopen(descriptor, "wb") as handle:
        yield handle


def _refused(exc: OSError, folder: Path, name: str) -> OSError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return OSError(
            exc.errno,
            f"{folder / name} is a symbolic link (or not a folder) that the kit did not "
            "create; nothing is written through it",
        )
    return exc


def write_beneath(folder: Path, relative: str, data: bytes) -> Path:
    with open_beneath(folder, relative) as handle:
        handle.write(data)
    return folder / relative


def copy_beneath(source: Path, folder: Path, relative: str) -> Path:
    """`source` copied to `folder/relative` by the kernel (sendfile), as shutil would."""
    with source.open("rb") as read, open_beneath(folder, relative) as write:
        size, offset = os.fstat(read.fileno()).st_size, 0
        while offset < size:
            sent = os.sendfile(write.fileno(), read.fileno(), offset, size - offset)
            if sent == 0:  # the file shrank meanwhile: the size check after says so
                break
            offset += sent
    return folder / relative
