"""The fused paths compute what the readable cells compute: outputs and every gradient."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import liquidnets
from liquidnets import CfC
from liquidnets.fast import native
from test_layers import MODELS, irregular, make

FUSED = [name for name in MODELS if name.startswith("cfc") and "mixed" not in name]
# the LTC kernel covers the fused solver in float32 on the CPU
FUSED_LTC = ["ltc", "ltc_explicit", "ltc_random", "ltc_autoncp_proj"]
TIMESPANS = ["none", "irregular", "constant"]


def run_both(model, x, h0, ts):
    """Outputs and gradients (inputs, state, timespans, parameters) of the fused and the
    reference path of one model."""
    results = []
    for fused in (True, False):
        liquidnets.fast.set_enabled(fused)
        try:
            assert (model._fused() is not None) == fused
            out, h_n = model(x, h0, ts)
            loss = (out**2).sum() + (h_n**3).sum()
            wrt = [x, h0] + ([ts] if isinstance(ts, torch.Tensor) else [])
            wrt += [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, wrt)
            results.append((out, h_n, *grads))
        finally:
            liquidnets.fast.set_enabled(True)
    return results


def inputs(model, dtype, kind, batch=3):
    torch.manual_seed(3)
    x = torch.randn(batch, 7, 4, dtype=dtype, requires_grad=True)
    h0 = (0.3 * torch.randn(batch, model.state_size, dtype=dtype)).requires_grad_(True)
    ts = {
        "none": None,
        "irregular": irregular(batch, 7).to(dtype).requires_grad_(True),
        "constant": 0.7,
    }[kind]
    return x, h0, ts


@pytest.mark.parametrize("kind", TIMESPANS)
@pytest.mark.parametrize("name", FUSED)
def test_fused_equals_reference_float64(name, kind):
    model = make(name, dtype=torch.float64)
    fused, reference = run_both(model, *inputs(model, torch.float64, kind))
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("use_native", [True, False], ids=["native", "torch-ops"])
@pytest.mark.parametrize("kind", TIMESPANS)
@pytest.mark.parametrize("name", FUSED)
def test_fused_equals_reference_float32(name, kind, use_native, monkeypatch):
    if not use_native:  # as with LIQUIDNETS_NATIVE=0 in the environment at the first call
        monkeypatch.setattr(native, "_state", {"tried": True, "lib": None, "error": None})
    model = make(name)
    fused, reference = run_both(model, *inputs(model, torch.float32, kind))
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


needs_kernels = pytest.mark.skipif(native.load() is None, reason="no C compiler here")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@needs_kernels
# Batches of padded lanes in one chunk, in two chunks, and two chunks of more than one block.
@pytest.mark.parametrize("split", ["kernel-threads", "thread-pool"])
@pytest.mark.parametrize("batch", [3, 17, 37], ids=["one-block", "two-blocks", "three-blocks"])
@pytest.mark.parametrize("kind", TIMESPANS)
@pytest.mark.parametrize("name", FUSED_LTC)
def test_ltc_kernel_equals_reference(name, kind, batch, split, two_threads, monkeypatch):
    # The batch is shared among threads inside the kernel (OpenMP builds), or split into
    # chunks for a thread pool (builds without OpenMP).
    if split == "thread-pool":
        monkeypatch.setattr(liquidnets.fast.ltc, "_threads", lambda lib: (2, 1))
    model = make(name)
    fused, reference = run_both(model, *inputs(model, torch.float32, kind, batch))
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def mixed_both(model, x, h0, c0, ts, mask):
    """Outputs and gradients of a mixed-memory model with its cell's kernels run step by step,
    and with the readable cell."""
    results = []
    for fused in (True, False):
        liquidnets.fast.set_enabled(fused)
        try:
            assert (model._fused(cell_only=True) is not None) == fused
            out, (h_n, c_n) = model(x, (h0, c0), ts, mask=mask)
            loss = (out**2).sum() + (h_n**3).sum() + (c_n**2).sum()
            wrt = [x, h0, c0] + ([ts] if isinstance(ts, torch.Tensor) else [])
            wrt += [p for p in model.parameters() if p.requires_grad]
            results.append((out, h_n, c_n, *torch.autograd.grad(loss, wrt)))
        finally:
            liquidnets.fast.set_enabled(True)
    return results


@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("kind", TIMESPANS)
@pytest.mark.parametrize("name", ["cfc_mixed", "ltc_mixed"])
def test_mixed_memory_steps_through_the_cell_kernels(name, kind, masked):
    # The LSTM runs between the cell's steps, so the cell's kernels run one step at a time.
    if name == "ltc_mixed" and native.load() is None:
        pytest.skip("no C compiler here")
    model = make(name)
    x, h0, ts = inputs(model, torch.float32, kind)
    c0 = (0.3 * torch.randn_like(h0)).requires_grad_(True)
    mask = torch.arange(7) < torch.tensor([[7], [4], [1]]) if masked else None
    fused, reference = mixed_both(model, x, h0, c0, ts, mask)
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_ltc_takes_the_reference_path_where_the_kernel_does_not_apply():
    assert make("ltc_rk4")._fused() is None  # explicit solvers
    assert make("ltc", dtype=torch.float64)._fused() is None
    assert make("ltc_mixed")._fused() is None


def test_a_wrong_kernel_would_be_caught():
    # The comparison above is not vacuous: perturb the fused output and it fails.
    model = make("cfc")
    fused, reference = run_both(model, *inputs(model, torch.float32, "irregular"))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(fused[0] * (1 + 1e-3), reference[0], rtol=1e-4, atol=1e-5)


def test_training_with_dropout_takes_the_reference_path():
    model = CfC(4, 6, backbone_units=8, backbone_dropout=0.3)
    model.train()
    assert model._fused() is None
    model.eval()
    assert model._fused() is not None
    assert CfC(4, 6, mixed_memory=True)._fused() is None


def test_without_a_compiler_the_kernels_fall_back(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_state", {"tried": False, "lib": None, "error": None})
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.setenv("LIQUIDNETS_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="no C compiler found"):
        assert native.load() is None
    assert "no C compiler" in native.error()
    model = make("cfc")
    x = torch.randn(2, 5, 4)
    with liquidnets.fast.disabled():
        reference, _ = model(x)
    torch.testing.assert_close(model(x)[0], reference, rtol=1e-5, atol=1e-6)


def test_kernels_build_into_the_cache(monkeypatch, tmp_path):
    if native._compiler() is None:
        pytest.skip("no C compiler on this machine")
    monkeypatch.setattr(native, "_state", {"tried": False, "lib": None, "error": None})
    monkeypatch.setenv("LIQUIDNETS_CACHE", str(tmp_path))
    lib = native.load()
    assert lib is not None, native.error()
    built = list(tmp_path.glob("kernels-*.so"))
    assert len(built) == 1 and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("batch", [3, 11], ids=["small-batch", "lanes"])
@pytest.mark.parametrize("use_native", [True, False], ids=["native", "torch-ops"])
@pytest.mark.parametrize("name", MODELS)
def test_streaming_step_without_grad_equals_the_sequence(name, use_native, batch, monkeypatch):
    # Under no_grad, step() takes a fused single step with cached weights; LTC runs a larger
    # batch in the lane layout of the training scan.
    if not use_native:
        monkeypatch.setattr(native, "_state", {"tried": True, "lib": None, "error": None})
    model = make(name)
    x, ts = torch.randn(batch, 7, 4), irregular(batch, 7)
    with torch.no_grad(), liquidnets.fast.disabled():
        reference, h_ref = model(x, timespans=ts)
    with torch.no_grad():
        h = model.init_state(batch)
        for t in range(7):
            y, h = model.step(x[:, t], h, ts[:, t])
            torch.testing.assert_close(y, reference[:, t], rtol=1e-4, atol=1e-5)
        for a, b in zip(
            h if isinstance(h, tuple) else (h,),
            (h_ref,) if not isinstance(h_ref, tuple) else h_ref,
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # the cached weights follow the parameters when they change
        for p in model.parameters():
            p.add_(0.01)
        y_new, _ = model.step(x[:, 0], model.init_state(batch), ts[:, 0])
        with liquidnets.fast.disabled():
            expected, _ = model(x[:, :1], timespans=ts[:, :1])
        torch.testing.assert_close(y_new, expected[:, 0], rtol=1e-4, atol=1e-5)


def test_the_environment_turns_the_kernels_off(monkeypatch):
    monkeypatch.setattr(native, "_state", {"tried": False, "lib": None, "error": None})
    monkeypatch.setenv("LIQUIDNETS_NATIVE", "0")
    assert native.load() is None and native.error() is None


@pytest.mark.parametrize(
    ("ts", "merged"),
    [(None, True), (0.5, True), (torch.tensor(0.5), True), ("grad", False), ("irregular", False)],
)
def test_a_constant_timespan_merges_the_gate_heads(ts, merged, monkeypatch):
    # One timespan for every step and sample: the scan gets [f1 | f2 | c t_a + t_b].
    from liquidnets.fast import cfc as fast_cfc

    seen = []
    original = fast_cfc.CfCScan.apply
    monkeypatch.setattr(
        fast_cfc.CfCScan, "apply", lambda spec, *a: seen.append(spec) or original(spec, *a)
    )
    model = make("cfc")
    x = torch.randn(2, 5, 4)
    if ts == "grad":
        ts = torch.tensor(0.5, requires_grad=True)
    elif ts == "irregular":
        ts = irregular(2, 5)
    model(x, timespans=ts)
    assert seen[-1].merged is merged
    assert seen[-1].n_heads == (3 if merged else 4)


@needs_kernels
def test_kernel_threads_are_torchs_openmp_team():
    # Built with OpenMP, the kernels must use the libgomp PyTorch loaded, not a second
    # runtime whose idle threads would compete with PyTorch's for the cores.
    # Checked in a fresh interpreter: other tests of this session import scikit-learn and
    # numba (the benchmarks' peers), which bring OpenMP runtimes of their own.
    if not native.load().ln_openmp() or not Path("/proc/self/maps").exists():
        pytest.skip("no OpenMP build, or no /proc here")
    script = (
        "import json\n"
        "from pathlib import Path\n"
        "import torch\n"
        "from liquidnets.fast import native\n"
        "assert native.load().ln_openmp()\n"
        "maps = Path('/proc/self/maps').read_text().splitlines()\n"
        "print(json.dumps(sorted({line.split()[-1] for line in maps if 'libgomp' in line})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    runtimes = json.loads(out)
    assert len(runtimes) == 1, runtimes


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", TIMESPANS)
@pytest.mark.parametrize(
    "kwargs",
    [{"backbone_units": 24}, {"backbone_units": 24, "mode": "no_gate"}, {"backbone_layers": 0}],
    ids=["default", "no_gate", "no-backbone"],
)
def test_dense_cfc_scan_at_sizes_that_fill_the_matmul_blocks(kwargs, kind, threads):
    # Larger than the models above: 11 rows and widths 20, 24, 60 and 80 take the kernel's
    # register blocks (4 rows x 16 columns) and its leftover rows and columns.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(5)
        model = CfC(5, 20, **kwargs)
        x = torch.randn(11, 9, 5, requires_grad=True)
        h0 = (0.3 * torch.randn(11, 20)).requires_grad_(True)
        ts = {"none": None, "irregular": irregular(11, 9).requires_grad_(True), "constant": 0.7}
        fused, reference = run_both(model, x, h0, ts[kind])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(fused, reference, strict=True):
        # Gradients here reach ~100 (sums over 99 rows): float32 rounding is relative to that.
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale)
