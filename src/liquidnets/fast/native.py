"""Optional native kernels: C sources compiled on first use, loaded with ctypes.

Nothing is compiled at import time. The first fused call looks for a C compiler (`$CC`, `cc`,
`gcc` or `clang`), builds every `kernels/*.c` into one shared library in a cache folder
(`$LIQUIDNETS_CACHE`, else `~/.cache/liquidnets`), keyed by a hash of the sources, compiler and
flags, and loads it. Without a compiler, or if building fails, `load()` returns None and the
fused paths run the same math with PyTorch ops. `LIQUIDNETS_NATIVE=0` turns the kernels off.

The library is built for this machine (`-march=native`), so the cache key includes the host.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

KERNELS = Path(__file__).with_name("kernels")
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC", "-shared", "-std=c11"]
# Tried first: OpenMP threads inside the LTC kernels. libgomp.so.1 is then the copy PyTorch
# loaded already (the loader matches it by soname), so they are PyTorch's own OpenMP team.
# Without it (a compiler with no OpenMP) the same sources build serial, and the batch is
# split over a Python thread pool instead.
OPENMP = ["-fopenmp"]

_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None, "error": None}

_c_long, _c_int, _ptr = ctypes.c_long, ctypes.c_int, ctypes.c_void_p
# Signatures of the exported functions: name -> argument types (all return void).
SIGNATURES: dict[str, list] = {
    # B, H, no_gate, nh, heads, add, add_sb, ts, ts_sb, ts_sh, h
    "ln_cfc_gate_fwd": [
        *(_c_long, _c_long, _c_int, _c_int),
        *(_ptr, _ptr, _c_long),
        *(_ptr, _c_long, _c_long, _ptr),
    ],
    # T, B, H, U, nh, no_gate, P, K, h0, Wr, Wh, bh, ts, ts_t, ts_sb, ts_sh, active, act_st,
    # act_sb, Hs, heads, Z, threads
    "ln_cfc_scan_fwd": [_c_long] * 5
    + [_c_int, _ptr, _c_long]
    + [_ptr] * 5
    + [_c_long] * 3
    + [_ptr, _c_long, _c_long]
    + [_ptr] * 3
    + [_c_long],
    # T, B, H, U, nh, no_gate, K, dHs, WrT, WhT, ts, ts_t, ts_sb, ts_sh, active, act_st,
    # act_sb, heads, Z, dP, dts, dh0, threads
    "ln_cfc_scan_bwd": [_c_long] * 5
    + [_c_int, _c_long]
    + [_ptr] * 4
    + [_c_long] * 3
    + [_ptr, _c_long, _c_long]
    + [_ptr] * 5
    + [_c_long],
    # B, C, H, U, no_gate, x, h, W1, b1, Wh, bh, ts, ts_b, work, h_out
    "ln_cfc_dense_step": [_c_long] * 4 + [_c_int] + [_ptr] * 7 + [_c_long, _ptr, _ptr],
    # B, L, sizes, C, no_gate, h, wown, bias, win, x, ts, ts_b, state, work
    "ln_cfc_wired_step": [_c_long, _c_long, _ptr, _c_long, _c_int]
    + [_ptr] * 6
    + [_c_long, _ptr, _ptr],
    # B, N, C, U, eps, x, in_w, in_b, v0, dt, dts, a_leak, gleak, cm, 12 synapse pointers, M,
    # out_w, out_b, out, y, threads
    "ln_ltc_step": [_c_long] * 4
    + [ctypes.c_float, _ptr, _ptr, _ptr, _ptr, ctypes.c_float]
    + [_ptr] * 16
    + [_c_long, _ptr, _ptr, _ptr, _ptr, _c_long],
    # the LTC scan, batch lanes side by side, and its backward: T, B, N, C, U, eps, then 18
    # input and 3 output pointers; 21 input and 14 output pointers; then the number of threads
    "ln_ltc_fwd_lanes": [_c_long] * 5 + [ctypes.c_float] + [_ptr] * 21 + [_c_long],
    "ln_ltc_bwd_lanes": [_c_long] * 5 + [ctypes.c_float] + [_ptr] * 35 + [_c_long],
}


def register(name: str, argtypes: list) -> None:
    """Declare the signature of a function exported by a kernel source (void return)."""
    SIGNATURES[name] = argtypes


def cache_dir() -> Path:
    root = os.environ.get("LIQUIDNETS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "liquidnets"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(cc: str, sources: list[Path], target: Path, flags: list[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a concurrent process never loads half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [cc, *flags, "-o", tmp, *map(str, sources), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["failed"]
            raise RuntimeError(next((ln for ln in lines if "error" in ln), lines[-1]))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load() -> ctypes.CDLL | None:
    """The kernel library, building it on first call; None when unavailable.
    `LIQUIDNETS_NATIVE` is read at that first call (this is on every step's path)."""
    if _state["tried"]:
        return _state["lib"]
    with _lock:
        if _state["tried"]:
            return _state["lib"]
        if os.environ.get("LIQUIDNETS_NATIVE", "1") in ("0", "false", "no"):
            _state["tried"] = True
            return None
        try:
            _state["lib"] = _load()
        except Exception as exc:  # no compiler, a failed build, an unloadable library
            _state["error"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"liquidnets: native kernels unavailable ({_state['error']}); using PyTorch ops",
                RuntimeWarning,
                stacklevel=3,
            )
        _state["tried"] = True
    return _state["lib"]


def _load() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC to use one)")
    sources = sorted(KERNELS.glob("*.c"))
    try:
        lib = _build_and_load(cc, sources, FLAGS + OPENMP)
    except (RuntimeError, OSError):
        lib = _build_and_load(cc, sources, FLAGS)
    for name, argtypes in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, None
    lib.ln_openmp.restype = ctypes.c_int
    lib.ln_ltc_lanes.restype = ctypes.c_long
    return lib


def _build_and_load(cc: str, sources: list[Path], flags: list[str]) -> ctypes.CDLL:
    key = hashlib.sha256()
    for part in (cc, " ".join(flags), platform.machine(), platform.node()):
        key.update(part.encode())
    for src in sources:
        key.update(src.read_bytes())
    target = cache_dir() / f"kernels-{key.hexdigest()[:20]}.so"
    failed = target.with_suffix(".failed")  # so that a failing build is not retried each run
    if failed.exists():
        raise RuntimeError(failed.read_text())
    if not target.exists():
        try:
            _build(cc, sources, target, flags)
        except RuntimeError as exc:
            failed.write_text(str(exc))
            raise
    return ctypes.CDLL(str(target))


def openmp() -> bool:
    """Whether the loaded kernels share their work among torch's OpenMP threads themselves
    (asked once; the answer cannot change for a loaded library)."""
    if "openmp" not in _state:
        lib = load()
        _state["openmp"] = bool(lib is not None and lib.ln_openmp())
    return _state["openmp"]


def error() -> str | None:
    """Why the kernels are unavailable, once `load()` has tried."""
    return _state["error"]
