"""One writer for every file asd produces.

A file is written to a temporary file beside it (``.<name>.<random>.<pid>.tmp``) and renamed into
place, so a reader never sees half a file and a killed process never leaves a truncated one: only
its temporary, which :func:`remove_orphaned_temporaries` later removes by its pid.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` with a binary file object, then move what it wrote to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{os.getpid()}.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def write_csv(path: str | Path, rows: Iterable[Iterable]) -> Path:
    """Rows as CSV with ``\\n`` line ends (the official files' format)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return write_text(path, buffer.getvalue())


#: A temporary file this old whose writer is gone was left by a killed process.
ORPHAN_AGE_S = 60.0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_orphaned_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries of :func:`write_atomically` (``*.<pid>.tmp``, in ``directory``'s
    sub-folders) that a killed process left: their process is gone (on this machine) and they are
    older than :data:`ORPHAN_AGE_S` (so another machine's write on a shared folder is not cut
    short). Returns what was removed."""
    removed = []
    if not directory.is_dir():
        return removed
    now = time.time()
    for temporary in directory.glob("*/*.tmp"):
        pid = temporary.suffixes[-2][1:] if len(temporary.suffixes) >= 2 else ""
        try:
            old = now - temporary.stat().st_mtime > ORPHAN_AGE_S
        except FileNotFoundError:
            continue  # its writer just renamed it into place
        if pid.isdigit() and old and not _process_alive(int(pid)):
            temporary.unlink(missing_ok=True)
            removed.append(temporary)
    return removed
