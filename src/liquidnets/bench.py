"""Speed and memory benchmark: liquidnets against ncps 1.0.1 and torch's LSTM and GRU.

Run it with ``python benchmarks/speed.py``, ``liquidnets bench`` or ``python -m liquidnets.bench``
(``--help`` lists the options). One run measures, in float32:

- **forward**: one call over a `(B, T, C)` batch under `torch.no_grad()`, in ms;
- **train**: forward, `loss = output.sum()`, backward, zero the gradients, in ms;
- **stream**: one step at batch 1 with the state carried, under `no_grad`, in µs per step:
  ours through `layer.step(x_t, h, 1.0)`, ncps (which has no step API) through its
  `layer.rnn_cell(x_t, h, 1.0)`, the peers through `nn.LSTMCell` / `nn.GRUCell`;
- **memory**: the peak memory that one training step at the longest `T` adds, in MB.

The models are CfC with its default backbone, CfC on `AutoNCP(units, 8)`, LTC (6 ODE unfolds)
dense and on `AutoNCP(units, 8)`, each for ours and for ncps (imported lazily; its cells read
"n/a" when it is missing), beside `nn.LSTM` / `nn.GRU` of the same hidden size.

**Timing.** Each model is called `warmup` times, the last warm-up call sets its number of
repeats (enough for about `target_seconds`, at least `min_repeats`), then the repeats of all
models of one case run interleaved (ours, ncps, LSTM, GRU, ours, ...) so that drift of a noisy
machine hits them alike. Reported: medians. On CUDA the clock is read after synchronising.

**Memory.** On CPU each measurement runs in a fresh process (a `forkserver` child, so torch is
imported once): it builds the model and the input, runs one tiny training step to start thread
pools and kernels, resets the kernel's peak-RSS mark (writing 5 to `/proc/self/clear_refs`),
runs the training step and reports `VmHWM - VmRSS` before it, from `/proc/self/status`: the
resident memory the step really touched, whatever allocated it. Where `clear_refs` is not
available, the growth of `getrusage().ru_maxrss` is used. (tracemalloc does not see torch's
allocations.) On CUDA: `torch.cuda.max_memory_allocated()` minus the memory allocated before the
step, in this process. Backpropagation through time keeps every step's activations, so the memory
grows linearly in `T`; a case whose estimate (linear from the shortest length) exceeds
`max_memory_mb` (default: half the memory available at the start) is skipped, and its
estimate is reported with `~`.

>>> s = settings_from(quick=True, models="CfC", cases="forward", compare_ncps=False)
>>> result = run(s, progress=None)
>>> [row["case"] for row in result["rows"]]
['forward']
>>> result["rows"][0]["results"]["ours"]["median"] > 0
True
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import liquidnets
from liquidnets import fast

MODELS = ("CfC", "CfC-NCP", "LTC", "LTC-NCP")
CASES = ("forward", "train", "stream", "memory")
COLUMNS = ("ours", "ncps", "lstm", "gru")
PEER = "peer"  # the row key of nn.LSTM / nn.GRU, measured once per case and shared by all rows

HELP = {
    "device": "cpu or cuda (default cpu)",
    "threads": "torch intra-op threads (default 2)",
    "batch": "batch size (default 32)",
    "inputs": "input features (default 16)",
    "units": "hidden units (default 64)",
    "lengths": "sequence lengths, comma-separated (default 100,1000)",
    "repeats": "timed repeats per model (default: adaptive, about target-seconds, at least 5)",
    "target_seconds": "seconds of timed repeats per model and case when adaptive (default 1)",
    "models": f"comma-separated subset of {','.join(MODELS)} (default all)",
    "cases": f"comma-separated subset of {','.join(CASES)} (default all)",
    "max_memory_mb": "skip training steps estimated to need more (default: half the free memory;"
    " 0: no limit)",
    "reference": "run ours with the fused paths off (inside liquidnets.fast.disabled())",
    "no_ncps": "leave out ncps even where it is installed",
    "quick": "tiny sizes, T=20 and 3 repeats: a smoke test of a few seconds",
    "json": "where to write the results (default benchmarks/results/speed-<device>.json)",
}
EXAMPLE_ARGS = "--lengths 100 --threads 4 --json /tmp/speed.json"


@dataclasses.dataclass
class Settings:
    """What one benchmark run measures; `settings_from` builds it from options."""

    device: str = "cpu"
    threads: int = 2
    batch: int = 32
    inputs: int = 16
    units: int = 64
    ncp_outputs: int = 8
    lengths: tuple[int, ...] = (100, 1000)
    repeats: int | None = None  # None: adaptive
    target_seconds: float = 1.0
    min_repeats: int = 5
    max_repeats: int = 200
    warmup: int = 2
    stream_steps: int = 100  # steps per timed streaming repeat
    models: tuple[str, ...] = MODELS
    cases: tuple[str, ...] = CASES
    max_memory_mb: float | None = None  # None: half the available memory; 0: no limit
    reference: bool = False
    compare_ncps: bool = True
    quick: bool = False


QUICK = {"batch": 4, "inputs": 4, "units": 16, "ncp_outputs": 4, "lengths": (20,), "repeats": 3}
QUICK.update(warmup=1, stream_steps=10, quick=True)


def _csv(value, kind=str) -> tuple:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    return tuple(kind(v) for v in value)


def settings_from(quick: bool = False, **options) -> Settings:
    """Settings from option values: the defaults (or the `quick` ones), then every option that
    is not None. `lengths`, `models` and `cases` may be comma-separated strings."""
    values = dict(QUICK) if quick else {}
    values.update({k: v for k, v in options.items() if v is not None})
    for name, kind in (("lengths", int), ("models", str), ("cases", str)):
        if name in values:
            values[name] = _csv(values[name], kind)
    s = Settings(**values)
    for name, allowed in (("models", MODELS), ("cases", CASES)):
        unknown = sorted(set(getattr(s, name)) - set(allowed))
        if unknown:
            raise ValueError(f"unknown {name} {unknown}; choose from {', '.join(allowed)}")
    if not s.lengths or min(s.lengths) < 1:
        raise ValueError(f"lengths must be positive integers; got {s.lengths}")
    for name in ("threads", "batch", "inputs", "units", "stream_steps"):
        if getattr(s, name) < 1:
            raise ValueError(f"{name} must be a positive integer; got {getattr(s, name)}")
    if s.device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda; got {s.device!r}")
    return s


# -- models --------------------------------------------------------------------------------
def _import_ncps():
    """ncps's torch layers and wirings, or None when ncps is not installed."""
    try:
        import ncps.torch
        import ncps.wirings
    except ImportError:
        return None
    return ncps


def _build(model: str, column: str, s: Settings, cell: bool = False) -> nn.Module:
    torch.manual_seed(0)
    if column in ("lstm", "gru"):
        if cell:
            kind = nn.LSTMCell if column == "lstm" else nn.GRUCell
            return kind(s.inputs, s.units).to(s.device)
        kind = nn.LSTM if column == "lstm" else nn.GRU
        return kind(s.inputs, s.units, batch_first=True).to(s.device)
    lib = liquidnets if column == "ours" else _import_ncps().torch
    wirings = liquidnets.wirings if column == "ours" else _import_ncps().wirings
    units = wirings.AutoNCP(s.units, s.ncp_outputs) if model.endswith("-NCP") else s.units
    layer = lib.CfC if model.startswith("CfC") else lib.LTC
    return layer(s.inputs, units).to(s.device)


def _train_step(model: nn.Module, x: torch.Tensor) -> None:
    model(x)[0].sum().backward()
    model.zero_grad(set_to_none=True)


def _case_fn(case: str, column: str, model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One timed call: `x` is `(B, T, C)`, or `(steps, 1, C)` for streaming."""
    if case == "train":
        return lambda: _train_step(model, x)
    if case == "forward":
        return torch.no_grad()(lambda: model(x))

    @torch.no_grad()
    def stream() -> None:
        if column == "ours":
            h = model.init_state(1)
            for x_t in x:  # (1, C)
                _, h = model.step(x_t, h, 1.0)
        elif column == "ncps":  # ncps has no step API: its cell is the nearest equivalent
            h = torch.zeros(1, model.state_size, device=x.device)
            for x_t in x:
                _, h = model.rnn_cell(x_t, h, 1.0)
        elif column == "lstm":
            h = c = torch.zeros(1, model.hidden_size, device=x.device)
            for x_t in x:
                h, c = model(x_t, (h, c))
        else:
            h = torch.zeros(1, model.hidden_size, device=x.device)
            for x_t in x:
                h = model(x_t, h)

    return stream


# -- timing --------------------------------------------------------------------------------
def _clock(fn: Callable[[], None], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _warm_up(fn: Callable[[], None], s: Settings) -> int:
    """Call `fn` `s.warmup` times; return how many timed repeats it gets."""
    for _ in range(s.warmup):
        cost = _clock(fn, s.device)  # the last warm-up call sets the number of repeats
    wanted = math.ceil(s.target_seconds / max(cost, 1e-9))
    return s.repeats or min(s.max_repeats, max(s.min_repeats, wanted))


def _interleaved(fns: dict, repeats: dict, device: str, burst: int = 4) -> dict:
    """Seconds per call of each function, taken in turns so that drift in the machine's speed
    affects all alike. Each turn is a burst of calls of one function whose first call is not
    recorded: it pays for what the previous function left behind (caches, and memory that a
    big model freed and the system reclaimed, which made a 7 ms step measure 50 ms)."""
    samples = {key: [] for key in fns}
    while any(len(samples[key]) < repeats[key] for key in fns):
        for key, fn in fns.items():
            if len(samples[key]) >= repeats[key]:
                continue
            _clock(fn, device)  # settles the function in
            for _ in range(min(burst - 1, repeats[key] - len(samples[key]))):
                samples[key].append(_clock(fn, device))
    return samples


def _summary(values: list[float], unit: str) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
        "unit": unit,
    }


def _error(e: Exception) -> dict:
    return {"error": f"{type(e).__name__}: {e}"}


def _time_case(case: str, length: int | None, keys: list, s: Settings, skipped: dict) -> dict:
    gen = torch.Generator().manual_seed(1)
    shape = (s.stream_steps, 1, s.inputs) if case == "stream" else (s.batch, length, s.inputs)
    x = torch.randn(shape, generator=gen).to(s.device)
    fns, repeats, cells = {}, {}, {key: {"skipped": why} for key, why in skipped.items()}
    for key in keys:
        if key in skipped:
            continue
        try:
            model = _build(*key, s, cell=case == "stream" and key[0] == PEER)
            fn = _case_fn(case, key[1], model, x)
            repeats[key], fns[key] = _warm_up(fn, s), fn
        except Exception as e:  # one broken model should not end a run of minutes
            cells[key] = _error(e)
    scale, unit = (1e6 / s.stream_steps, "us/step") if case == "stream" else (1e3, "ms")
    for key, values in _interleaved(fns, repeats, s.device).items():
        cells[key] = _summary([v * scale for v in values], unit)
    return cells


# -- memory --------------------------------------------------------------------------------
def _proc_kb(path: str, field: str) -> int:
    """A `field:  N kB` line of a /proc file (status, meminfo), in kB."""
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _peak_growth_mb(fn: Callable[[], None], device: str) -> float:
    """The peak memory, in MB, that `fn()` adds to what is in use before it."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set, to the current one
    except OSError:  # not Linux: the growth of the peak so far (misses peaks below an old one)
        import resource

        per_mb = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / per_mb
    before = _proc_kb("/proc/self/status", "VmRSS")
    fn()
    return (_proc_kb("/proc/self/status", "VmHWM") - before) / 1024


def _measure_memory(key: tuple, length: int, s: Settings) -> float:
    torch.set_num_threads(s.threads)
    with fast.disabled() if s.reference else contextlib.nullcontext():
        model = _build(*key, s)
        _train_step(model, torch.randn(1, 2, s.inputs, device=s.device))  # start pools, kernels
        x = torch.randn(s.batch, length, s.inputs, device=s.device)
        return _peak_growth_mb(lambda: _train_step(model, x), s.device)


def _child(fn: Callable, args: tuple, conn) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # report it to the parent rather than die silently
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _probe_context():
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":  # the server imports torch once; each probe is a fork of it
        ctx.set_forkserver_preload(["liquidnets.bench", "ncps.torch", "ncps.wirings"])
    return ctx


def _isolated(fn: Callable, *args):
    """`fn(*args)` in a fresh process (picklable function and arguments)."""
    ctx = _probe_context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(fn, args, send))
    child.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:  # killed before it could answer, e.g. by the out-of-memory killer
        status, value = "error", "the probe process died"
    child.join()
    if status != "ok":
        code = f" (exit code {child.exitcode})" if child.exitcode else ""
        raise RuntimeError(f"{value}{code}")
    return value


def _memory(key: tuple, length: int, s: Settings) -> float:
    """Peak MB of one training step, in a fresh process on CPU."""
    if s.device == "cuda":
        return _measure_memory(key, length, s)
    try:
        return _isolated(_measure_memory, key, length, s)
    except RuntimeError as e:
        raise RuntimeError(f"memory of {key} at T={length}: {e}") from None


def _round(case: str, length: int | None, keys: list, s: Settings, skipped: dict) -> dict:
    """`_time_case` as run in a fresh process: threads, allocator and fast-path switch set."""
    torch.set_num_threads(s.threads)
    _keep_freed_memory()
    with fast.disabled() if s.reference else contextlib.nullcontext():
        return _time_case(case, length, keys, s, skipped)


def _memory_limit_mb(s: Settings) -> float | None:
    if s.max_memory_mb is not None:
        return s.max_memory_mb or None
    if s.device == "cuda":
        return torch.cuda.mem_get_info()[0] / 2**20 / 2
    try:
        return _proc_kb("/proc/meminfo", "MemAvailable") / 1024 / 2
    except (OSError, KeyError):
        return None


# -- the run -------------------------------------------------------------------------------
def _keys(s: Settings, have_ncps: bool) -> list:
    columns = ["ours"] + (["ncps"] if have_ncps else [])
    return [(m, c) for m in s.models for c in columns] + [(PEER, "lstm"), (PEER, "gru")]


def _rows(case: str, length: int | None, cells: dict, s: Settings, have_ncps: bool) -> list:
    rows = []
    for model in s.models:
        results = {c: cells.get((model, c)) for c in ("ours", "ncps")}
        results |= {c: cells.get((PEER, c)) for c in ("lstm", "gru")}
        if not have_ncps:
            results["ncps"] = {"skipped": "ncps is not installed or was left out"}
        # a memory estimate (a step too big to run) still gives a ratio, shown with "~"
        ours = results["ours"].get("median", results["ours"].get("estimate"))
        ratios = {}
        for other in ("ncps", "lstm"):
            value = results[other].get("median", results[other].get("estimate"))
            ratios[f"{other}/ours"] = value / ours if value and ours else None
        rows.append(
            {"case": case, "model": model, "length": length, "results": results, "ratios": ratios}
        )
    return rows


def metadata(s: Settings) -> dict:
    """Where and with what the run was made."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    try:
        from importlib.metadata import version

        ncps_version = version("ncps")
    except Exception:
        ncps_version = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "liquidnets": liquidnets.__version__,
        "torch": torch.__version__,
        "ncps": ncps_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if s.device == "cuda" else None,
        "threads": s.threads,
        "dtype": "float32",
        "fast_path": fast.enabled(),
        "reference": s.reference,
        "load_average_before": _load(),  # other work on the machine skews every number
    }


def _load() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def _memory_cell(key: tuple, length: int, s: Settings) -> dict:
    try:
        return {"median": _memory(key, length, s), "repeats": 1, "unit": "MB"}
    except RuntimeError as e:
        return _error(e)


def _keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process rather than return it to the system.

    Otherwise the gigabytes that ncps's LTC frees after each step go back to the kernel, and
    every later allocation, of any model, page-faults its memory in anew: on a virtual machine
    that costs more than the arithmetic of the small models and distorts their times (we saw
    torch's LSTM training step take 57 ms in the interleaved run against 7 ms alone).
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 32 * 2**20)  # the largest glibc allows
    return bool(ok and libc.mallopt(m_trim_threshold, 2**31 - 1))


def run(s: Settings, progress: Callable[[str], None] | None = print) -> dict:
    """Run the benchmark described by `s`; return `{"metadata", "settings", "rows"}`.

    Every row is one case (`forward`, `train`, `stream`, `memory`) of one model at one length,
    with `results[column]` for the columns `ours`, `ncps`, `lstm`, `gru` (`median`, `min`,
    `max`, `repeats`, `unit`; or `skipped`, or `error`) and `ratios["ncps/ours"]`,
    `ratios["lstm/ours"]`: above 1 where ours is faster (or smaller).
    """
    say = progress or (lambda _: None)
    threads, started = torch.get_num_threads(), time.perf_counter()
    have_ncps = s.compare_ncps and _import_ncps() is not None
    keys, rows = _keys(s, have_ncps), []
    shortest, longest = min(s.lengths), max(s.lengths)
    torch.set_num_threads(s.threads)
    try:
        with fast.disabled() if s.reference else contextlib.nullcontext():
            meta = metadata(s)
            if s.device == "cpu":
                meta["allocator_keeps_freed_memory"] = _keep_freed_memory()
            meta["memory_limit_mb"] = limit = _memory_limit_mb(s)
            # Backpropagation through time keeps every step's activations, so the memory of a
            # training step is linear in T: measured at the shortest length, it estimates the
            # others; a step that would exceed the limit is skipped, not run into the OOM killer.
            short = {}
            if "memory" in s.cases or ("train" in s.cases and limit):
                say(f"memory T={shortest}: each training step in a fresh process")
                short = {k: _memory_cell(k, shortest, s) for k in keys}

            def too_big(length: int) -> dict:
                mb = {k: c["median"] * length / shortest for k, c in short.items() if "median" in c}
                return {
                    k: (v, f"needs ~{v:.0f} MB > limit {limit:.0f} MB")
                    for k, v in mb.items()
                    if limit and v > limit
                }

            for case in ("forward", "train", "stream"):
                for length in ([None] if case == "stream" else s.lengths) * (case in s.cases):
                    tick, skip = time.perf_counter(), too_big(length) if case == "train" else {}
                    skip = {k: why for k, (_, why) in skip.items()}
                    # One round per model with the LSTM/GRU peers, and ncps in a round of its
                    # own, each in a fresh process on the CPU: in a process where ncps's LTC
                    # runs (it allocates and frees gigabytes per step), even torch's LSTM ran
                    # 5x slower than alone.
                    for model in s.models:
                        cells = {}
                        for group in ([(model, "ours"), (PEER, "lstm"), (PEER, "gru")],
                                      [(model, "ncps")]):  # fmt: skip
                            mine = [k for k in keys if k in group]
                            args = (case, length, mine, s, skip)
                            run_round = _isolated if s.device == "cpu" else lambda f, *a: f(*a)
                            cells |= run_round(_round, *args) if mine else {}
                        one = dataclasses.replace(s, models=[model])
                        rows += _rows(case, length, cells, one, have_ncps)
                    at = "" if length is None else f" T={length}"
                    say(f"{case}{at}: {time.perf_counter() - tick:.1f} s")
            if "memory" in s.cases:
                cells, skip = {}, too_big(longest)
                for k in keys:
                    if k in skip:
                        cells[k] = {"skipped": skip[k][1], "estimate": skip[k][0]}
                    else:
                        cells[k] = short[k] if longest == shortest else _memory_cell(k, longest, s)
                rows += _rows("memory", longest, cells, s, have_ncps)
                say(f"memory T={longest}: done")
    finally:
        torch.set_num_threads(threads)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average_after"] = _load()
    return {"metadata": meta, "settings": dataclasses.asdict(s), "rows": rows}


# -- output --------------------------------------------------------------------------------
def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cell(result: dict, notes: dict) -> str:
    if "median" in result:
        return _number(result["median"])
    if "error" in result:
        notes.setdefault("error", result["error"])
        return "error"
    if "estimate" in result:
        notes.setdefault("~", result["skipped"])
        return f"~{_number(result['estimate'])}"
    return "n/a" if "ncps" in result["skipped"] else "skipped"


def _ratio(value: float | None, estimated: bool) -> str:
    if value is None:
        return "n/a"
    return ("~" if estimated else "") + (f"{value:.1f}x" if value >= 10 else f"{value:.2f}x")


def _label(row: dict) -> str:
    t = f" T={row['length']}" if row["length"] else ""
    unit = {"forward": "ms", "train": "ms", "stream": "µs/step", "memory": "MB"}[row["case"]]
    name = {"forward": "forward", "train": "train step", "stream": "stream step"}
    return f"{name.get(row['case'], 'train memory')}{t} ({unit})"


def format_table(result: dict) -> str:
    """The results as a Markdown table, with a line on the set-up and notes below."""
    m, s = result["metadata"], result["settings"]
    lines = [
        f"liquidnets {m['liquidnets']} vs ncps {m['ncps'] or 'n/a'} vs torch {m['torch']}"
        f" LSTM/GRU; {m['gpu'] or m['cpu']}, {m['threads']} threads, {m['dtype']},"
        f" batch {s['batch']}, {s['inputs']} inputs, {s['units']} units,"
        f" fast path {'on' if m['fast_path'] else 'off'}",
        "",
        "| case | model | ours | ncps | LSTM | GRU | ncps/ours | LSTM/ours |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    notes: dict[str, str] = {}
    for row in result["rows"]:
        cells = [_cell(row["results"][c], notes) for c in COLUMNS]
        guess = {c: "estimate" in row["results"][c] for c in ("ours", "ncps", "lstm")}
        ratios = [
            _ratio(row["ratios"][f"{c}/ours"], guess[c] or guess["ours"]) for c in ("ncps", "lstm")
        ]
        lines.append(f"| {_label(row)} | {row['model']} | {' | '.join(cells + ratios)} |")
    lines += [
        "",
        "Medians; ours interleaved with LSTM/GRU in one process per row, ncps in another"
        " (stream: batch 1, state carried); memory: peak growth of one training step. Ratios"
        " above 1: ours is faster (or smaller).",
    ]
    if "~" in notes:
        lines.append(
            f"~: not run, estimated linearly in T (e.g. {notes['~']});"
            " --max-memory-mb raises the limit."
        )
    if "error" in notes:
        lines.append(f"error: see the JSON; the first was {notes['error']}")
    return "\n".join(lines)


def save_json(result: dict, path: str | os.PathLike) -> Path:
    """Write `result` to `path` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(f.name, path)
    return path


def report(
    s: Settings, json_path: str | os.PathLike | None = None, results_dir: str | os.PathLike = ""
) -> dict:
    """Run, print the table and write the JSON to `json_path` (default
    `<results_dir>/speed-<device>.json`, `results_dir` defaulting to `benchmarks/results`);
    return the results."""
    result = run(s, progress=lambda line: print(f"[bench] {line}", file=sys.stderr, flush=True))
    print(format_table(result))
    default = Path(results_dir or Path("benchmarks", "results"), f"speed-{s.device}.json")
    path = save_json(result, json_path or default)
    print(f"\nwrote {path}")
    return result


def main(argv: list[str] | None = None, results_dir: str | os.PathLike = "") -> dict:
    """Parse the command line, run the benchmark, print and save it; return the results."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/speed.py",
        description="Time liquidnets against ncps 1.0.1 and torch's LSTM/GRU.",
        epilog=f"example:\n  python benchmarks/speed.py {EXAMPLE_ARGS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help=HELP["device"])
    for name, kind in (("threads", int), ("batch", int), ("inputs", int), ("units", int)):
        parser.add_argument(f"--{name}", type=kind, help=HELP[name])
    parser.add_argument("--lengths", help=HELP["lengths"])
    parser.add_argument("--repeats", type=int, help=HELP["repeats"])
    parser.add_argument("--target-seconds", type=float, help=HELP["target_seconds"])
    parser.add_argument("--models", help=HELP["models"])
    parser.add_argument("--cases", help=HELP["cases"])
    parser.add_argument("--max-memory-mb", type=float, help=HELP["max_memory_mb"])
    parser.add_argument("--reference", action="store_true", default=None, help=HELP["reference"])
    parser.add_argument("--no-ncps", action="store_true", help=HELP["no_ncps"])
    parser.add_argument("--quick", action="store_true", help=HELP["quick"])
    parser.add_argument("--json", help=HELP["json"])
    args = vars(parser.parse_args(argv))
    json_path = args.pop("json")
    args["compare_ncps"] = False if args.pop("no_ncps") else None
    try:
        s = settings_from(**args)
    except ValueError as e:
        parser.error(str(e))
    return report(s, json_path, results_dir)


if __name__ == "__main__":
    main()
