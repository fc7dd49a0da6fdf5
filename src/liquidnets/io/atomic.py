"""Write a folder or a file beside its final place, then rename it into place: a crash or an
error never leaves half of it, and what was there before is only replaced at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`. When the block succeeds it becomes
    `path` (an existing `path` is moved aside first, then removed); when it fails it is
    removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def new_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`, renamed over `path` when the block
    succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.replace(name, path)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def write_json(path: str | Path, data, **dumps) -> Path:
    """Write `data` as indented JSON to `path` through `new_file` (atomically); `dumps` go to
    `json.dumps` (e.g. `default=`). Returns the path."""
    import json

    path = Path(path)
    with new_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, **dumps) + "\n")
    return path
