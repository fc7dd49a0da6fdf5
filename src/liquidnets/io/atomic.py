"""Write a folder or a file beside its final place, then move it into place: a crash or an
error never leaves half of it, and what was there before is only replaced at the end.

A folder is claimed (`claim`) for the whole time it is being made:

- **One writer.** A lock beside it (`.NAME.lock`, held with `flock` from the claim to the
  swap) makes a second writer to the same path fail at once, and the kernel releases it when
  its process dies, so a killed writer never blocks the next one.
- **Only ours is replaced.** An existing folder is replaced only with `overwrite`, and only
  when it is a liquidnets folder of the same kind (`Kind`: a run, a model, a snapshot, ...)
  holding nothing that kind does not write. Anything else is refused by name.
- **Never without one of them.** On Linux the new folder and the old one trade places in one
  atomic `renameat2(RENAME_EXCHANGE)`; the old one is removed after. Elsewhere the old one is
  first moved aside (into `.NAME.old-*`) and then the new one into place; a crash between the
  two is repaired by the next claim, which moves the old one back.
- **No litter.** The next claim of a path removes what killed writers left beside it
  (`.NAME.tmp-*` and `.NAME.old-*`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class FolderError(ValueError):
    """A folder that may not be written or replaced (one line, names the folder)."""


@dataclass(frozen=True)
class Kind:
    """What a liquidnets folder is, told from the outside.

    Args:
        name: how messages call it (`run`, `model`, `stream snapshot`, ...).
        marker: the JSON file every such folder has (`config.json`, `stream.json`).
        entries: every name it writes at its top level; an existing folder holding anything
            else is never replaced, since that is the user's.
        check: on the marker's parsed JSON: True when it is this kind's.
    """

    name: str
    marker: str
    entries: frozenset[str]
    check: Callable[[dict], bool]

    def recognises(self, path: Path) -> bool:
        try:
            data = json.loads((path / self.marker).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(data, dict) and bool(self.check(data))


def _leftover(name: str) -> re.Pattern:
    # what mkdtemp makes for `name`: `.name.tmp-` or `.name.old-` and 8 characters
    return re.compile(rf"\.{re.escape(name)}\.(tmp|old)-[a-z0-9_]{{8}}")


def _check_replaceable(path: Path, kind: Kind, overwrite: bool) -> None:
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if path.is_symlink() or not path.is_dir():
        raise FolderError(
            f"{path} is not a folder; --overwrite replaces only a liquidnets {kind.name}"
        )
    if not kind.recognises(path):
        raise FolderError(
            f"{path} is not a liquidnets {kind.name} (no {kind.marker} of one); --overwrite "
            f"replaces only that, so move it away or choose another path"
        )
    foreign = sorted(p.name for p in path.iterdir() if p.name not in kind.entries)
    if foreign:
        raise FolderError(
            f"{path} holds {foreign[0]!r}, which a liquidnets {kind.name} does not write; move "
            f"it out of the folder before --overwrite"
        )


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold `.NAME.lock` beside `path`; another holder makes this a `FolderError` at once."""
    lock = path.parent / f".{path.name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: an exclusive create instead
        fcntl = None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o644)
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FolderError(
                f"{path} is being written by another liquidnets process (pid {holder}); wait "
                f"for it to finish or choose another path"
            ) from None
        try:  # the holder before us may have removed the file we locked: lock the new one
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still held: nobody can have it in between
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux `renameat2` with `RENAME_EXCHANGE`);
    False where the system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _recover(path: Path, keep: Path | None = None) -> None:
    """Undo what a killed writer left: the old folder back in place when the swap stopped
    between its two renames, then every temporary folder beside `path` (but `keep`)."""
    pattern = _leftover(path.name)
    leftovers = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p != keep]
    if not os.path.lexists(path):
        aside = [p / path.name for p in leftovers if ".old-" in p.name]
        aside = [p for p in aside if p.is_dir()]
        if aside:
            os.replace(max(aside, key=lambda p: p.stat().st_mtime), path)
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)


LEFTOVER = re.compile(r"\.(.+)\.(tmp-[a-z0-9_]{8}|old-[a-z0-9_]{8}|lock)")


def tidy(folder: str | Path) -> list[Path]:
    """What killed writers left in `folder` (their `.NAME.tmp-*`, `.NAME.old-*` and
    `.NAME.lock`), put right as the next claim of NAME would: an old folder moved back when
    NAME is missing, the rest removed. A NAME being written now is left alone. Returns what
    was removed."""
    folder = Path(folder)
    names = {m.group(1) for p in folder.iterdir() if (m := LEFTOVER.fullmatch(p.name))}
    removed = []
    for name in sorted(names):
        path = folder / name
        before = {p for p in folder.iterdir() if LEFTOVER.fullmatch(p.name)
                  and LEFTOVER.fullmatch(p.name).group(1) == name}  # fmt: skip
        try:
            with _lock(path):
                _recover(path)
        except FolderError:
            continue  # a live writer's
        removed += sorted(p for p in before if not p.exists())
    return removed


def _swap_in(tmp: Path, path: Path) -> None:
    if not os.path.lexists(path):
        os.replace(tmp, path)
    elif _exchange(tmp, path):
        shutil.rmtree(tmp)  # now the old folder
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / path.name)
        os.replace(tmp, path)
        shutil.rmtree(old)


def _ddp_worker() -> bool:
    """Whether this process is one that Lightning's DDP launched beside rank 0 (it runs the
    same command again, with these variables set)."""
    return any(os.environ.get(k, "0") != "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unfinished(path: str | Path, marker: str) -> Path | None:
    """The temporary folder a killed writer of `path` left, holding `marker` (the newest,
    when there are several), or None."""
    path = Path(path)
    if not path.parent.is_dir():
        return None
    found = [p for p in path.parent.iterdir() if _leftover(path.name).fullmatch(p.name)
             and ".tmp-" in p.name and (p / marker).is_file()]  # fmt: skip
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@contextlib.contextmanager
def claim(
    path: str | Path, kind: Kind, *, overwrite: bool = False, resume: Path | None = None
) -> Iterator[Path]:
    """Claim the folder `path` and yield an empty temporary folder beside it, which becomes
    `path` when the block succeeds (and is removed when it fails, leaving `path` as it was).
    With `resume`, the temporary folder a killed writer left (see `unfinished`) is yielded
    as it is, to be completed.

    Raises `FileExistsError` when `path` exists without `overwrite`, and `FolderError` when
    it is not a `kind` folder of ours or another process is writing it. Both are checked at
    the start, before any work, and the claim holds until the swap."""
    path = Path(path)
    if _ddp_worker():  # a copy of the command that Lightning started: rank 0 writes, not it
        with tempfile.TemporaryDirectory(prefix="liquidnets-rank-") as tmp:
            yield Path(tmp)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        _recover(path, keep=resume)
        _check_replaceable(path, kind, overwrite)
        if resume is not None:
            tmp = Path(resume)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
            tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide a run from its group
        try:
            yield tmp
            _check_replaceable(path, kind, overwrite)  # still ours (changed by hand meanwhile?)
            _swap_in(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


@contextlib.contextmanager
def new_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`, renamed over `path` when the block
    succeeds and removed when it fails."""
    path = Path(path)
    if path.is_dir():
        raise FolderError(f"{path} is a folder; give a file name to write to")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        os.replace(name, path)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def distinct(outputs: dict[str, object], inputs: dict[str, object], *, inside=True) -> None:
    """Refuse an output path that is an input path or (with `inside`) lies inside an input
    folder: `{"--out": path}` against `{"--data": path, "the run folder": path}` (None: not
    given). Raises `FolderError` naming both."""
    for out_name, out in outputs.items():
        if out is None or not isinstance(out, (str, os.PathLike)):
            continue
        o = Path(out).resolve()
        for in_name, given in inputs.items():
            if given is None or not isinstance(given, (str, os.PathLike)):
                continue
            i = Path(given).resolve()
            if o == i or (inside and i in o.parents):
                where = "is" if o == i else "lies inside"
                raise FolderError(
                    f"{out_name} {out} {where} {in_name} {given}; write the output elsewhere"
                )


def strict(value):
    """`value` made strict JSON: numpy scalars and arrays as Python numbers and lists, and
    NaN or infinite numbers as null (Python's `json` would write bare `NaN`, which other
    parsers reject)."""
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(data, **kwargs) -> str:
    """Strict JSON text of `data` (see `strict`), indented by 2 unless told otherwise."""
    return json.dumps(strict(data), allow_nan=False, **{"indent": 2, **kwargs})


def write_json(path: str | Path, data, **kwargs) -> Path:
    """Write `data` as strict, indented JSON to `path` through `new_file` (atomically);
    `kwargs` go to `json.dumps` (e.g. `sort_keys=True`). Returns the path."""
    path = Path(path)
    with new_file(path) as tmp:
        tmp.write_text(dumps(data, **kwargs) + "\n")
    return path
