"""Numerical parity of liquidnets with the PyTorch layers of ncps 1.0.1 (a test-only oracle).

Every case builds an ncps model right after seeding torch, builds the matching liquidnets
model with the same arguments (wirings: one object from each library, same arguments), copies
the ncps weights into ours with a plain strict ``load_state_dict`` and checks, in float32 and in
float64, that both give the same outputs, final states, input gradients and parameter gradients.

ncps 1.0.1 quirks the cases respect: it creates a float32 zero state when ``hx`` is None (so in
float64 it gets an explicit zero state), and it only handles ``timespans`` for batch size 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

ncps = pytest.importorskip("ncps")
ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")

import liquidnets  # noqa: E402
from liquidnets import wirings as lw  # noqa: E402

SEED = 1234
IN = 6  # input features
T = 7  # sequence length
B = 3  # batch size (1 whenever timespans are given)
HIDDEN = 8  # units of the dense CfCCell cases

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
}
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]

# Wiring specs, (class name, args, kwargs), instantiated once per library.
FC8 = ("FullyConnected", (8,), {})
FC8_OUT3 = ("FullyConnected", (8,), {"output_dim": 3})
RANDOM10 = ("Random", (10,), {"sparsity_level": 0.5})
NCP = ("NCP", (10, 8, 4, 4, 4, 4, 3), {})
AUTO16 = ("AutoNCP", (16, 4), {})
AUTO24 = ("AutoNCP", (24, 6), {"sparsity_level": 0.3})

# |mask| of the sparse dense-CfCCell case: shape (input + hidden, hidden), entries -1/0/1
SPARSITY_MASK = np.random.default_rng(7).choice([-1, 0, 1], size=(IN + HIDDEN, HIDDEN))


def _units(wirings_module, units):
    """An int passes through; a wiring spec becomes a wiring of `wirings_module`."""
    if isinstance(units, int):
        return units
    name, args, kwargs = units
    return getattr(wirings_module, name)(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------


def _structure(obj):
    if isinstance(obj, torch.Tensor):
        return "tensor"
    return tuple(_structure(item) for item in obj)


def _flatten(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    return [t for item in obj for t in _flatten(item)]


def _assert_tree_close(actual, expected, tol, what: str) -> None:
    assert _structure(actual) == _structure(expected), f"{what}: structure differs"
    for i, (a, e) in enumerate(zip(_flatten(actual), _flatten(expected))):
        torch.testing.assert_close(a, e, **tol, msg=lambda m, i=i: f"{what}[{i}]: {m}")


def _loss(outputs) -> torch.Tensor:
    return sum((t**2).sum() for t in _flatten(outputs))


def _param_pairs(ref, ours) -> list[tuple[str, str]]:
    """(ncps name, liquidnets name) of each trainable ncps parameter and its copy in ours.

    Call right after loading. Names may differ (ours renumbers ncps's backbone Sequential), so
    each one is paired with the parameter of ours holding the same values (same name wins ties);
    every trainable ncps parameter must have its copy.
    """
    ours_params = dict(ours.named_parameters())
    pairs = []
    for name, p_ref in ref.named_parameters():
        if not p_ref.requires_grad:
            continue
        same = [
            n
            for n, p in ours_params.items()
            if p.shape == p_ref.shape and p.dtype == p_ref.dtype and torch.equal(p, p_ref)
        ]
        assert same, f"ours holds no parameter equal to ncps's {name}"
        assert name in same or len(same) == 1, f"ambiguous copies of {name}: {same}"
        pairs.append((name, name if name in same else same[0]))
    return pairs


def _check_parity(ref, ours, x, ref_args, ours_args, dtype, pairs=None) -> None:
    """Forward outputs, input gradient and paired parameter gradients agree."""
    tol = TOL[dtype]
    pairs = _param_pairs(ref, ours) if pairs is None else pairs
    x_ref = x.detach().clone().requires_grad_(True)
    x_ours = x.detach().clone().requires_grad_(True)
    out_ref = ref(x_ref, *ref_args)
    out_ours = ours(x_ours, *ours_args)
    _assert_tree_close(out_ours, out_ref, tol, "forward (output, state)")

    _loss(out_ref).backward()
    _loss(out_ours).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **tol, msg=lambda m: f"x.grad: {m}")

    ref_params, ours_params = dict(ref.named_parameters()), dict(ours.named_parameters())
    for ref_name, ours_name in pairs:
        torch.testing.assert_close(
            ours_params[ours_name].grad,
            ref_params[ref_name].grad,
            **tol,
            msg=lambda m, n=ref_name, o=ours_name: f"grad of {n} (ours: {o}): {m}",
        )


# --------------------------------------------------------------------------------------------
# Layer cases (CfC and LTC)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    layer: str  # "cfc" or "ltc"
    units: Any = 8  # int, or a wiring spec
    kwargs: dict = dataclasses.field(default_factory=dict)
    batch: int | None = B  # None: unbatched (T, C) input with 1-D hx
    batch_first: bool = True
    hx: bool = False  # pass an explicit random initial state
    timespans: str | None = None  # None, "plain" ((1, T)) or "trailing1" ((1, T, 1))


def _case(case_id: str, layer: str, **fields):
    return pytest.param(Case(layer, **fields), id=case_id)


LAYER_CASES = [
    # CfC: modes and backbones
    _case("cfc-default", "cfc"),
    _case("cfc-pure", "cfc", kwargs={"mode": "pure"}),
    _case("cfc-no_gate", "cfc", kwargs={"mode": "no_gate"}),
    _case("cfc-bb_units16", "cfc", kwargs={"backbone_units": 16}),
    _case("cfc-bb_units64", "cfc", kwargs={"backbone_units": 64}),
    _case("cfc-bb_layers0", "cfc", kwargs={"backbone_layers": 0}),
    _case("cfc-bb_layers1", "cfc", kwargs={"backbone_layers": 1, "backbone_units": 16}),
    _case("cfc-bb_layers2", "cfc", kwargs={"backbone_layers": 2, "backbone_units": 16}),
    _case("cfc-bb_layers3", "cfc", kwargs={"backbone_layers": 3, "backbone_units": 16}),
    _case("cfc-pure-bb_layers0", "cfc", kwargs={"mode": "pure", "backbone_layers": 0}),
    _case("cfc-no_gate-bb_layers2", "cfc", kwargs={"mode": "no_gate", "backbone_layers": 2}),
    *(
        _case(f"cfc-act_{act}", "cfc", kwargs={"activation": act, "backbone_layers": 2})
        for act in ("lecun_tanh", "silu", "relu", "tanh", "gelu")
    ),
    _case("cfc-dropout-bb2", "cfc", kwargs={"backbone_layers": 2, "backbone_dropout": 0.3}),
    _case("cfc-dropout-bb3", "cfc", kwargs={"backbone_layers": 3, "backbone_dropout": 0.3}),
    _case("cfc-dropout-bb1", "cfc", kwargs={"backbone_layers": 1, "backbone_dropout": 0.3}),
    # CfC: projection, memory, layouts, states
    _case("cfc-proj5", "cfc", kwargs={"proj_size": 5}),
    _case("cfc-proj5-last", "cfc", kwargs={"proj_size": 5, "return_sequences": False}),
    _case("cfc-last", "cfc", kwargs={"return_sequences": False}),
    _case("cfc-mixed", "cfc", kwargs={"mixed_memory": True}),
    _case("cfc-mixed-hx", "cfc", kwargs={"mixed_memory": True}, hx=True),
    _case(
        "cfc-mixed-proj5-last",
        "cfc",
        kwargs={"mixed_memory": True, "proj_size": 5, "return_sequences": False},
    ),
    _case("cfc-mixed-unbatched-hx", "cfc", kwargs={"mixed_memory": True}, batch=None, hx=True),
    _case("cfc-hx", "cfc", hx=True),
    _case("cfc-time_major", "cfc", kwargs={"batch_first": False}, batch_first=False),
    _case(
        "cfc-time_major-hx-last",
        "cfc",
        kwargs={"batch_first": False, "return_sequences": False},
        batch_first=False,
        hx=True,
    ),
    _case("cfc-unbatched", "cfc", batch=None),
    _case("cfc-unbatched-hx", "cfc", batch=None, hx=True),
    _case(
        "cfc-unbatched-time_major-proj5",
        "cfc",
        kwargs={"batch_first": False, "proj_size": 5},
        batch=None,
        batch_first=False,
    ),
    # CfC: timespans (batch 1)
    _case("cfc-ts_1T", "cfc", timespans="plain"),
    _case("cfc-ts_1T1", "cfc", timespans="trailing1"),
    _case("cfc-pure-ts_1T", "cfc", kwargs={"mode": "pure"}, timespans="plain"),
    _case(
        "cfc-no_gate-ts_1T1-hx", "cfc", kwargs={"mode": "no_gate"}, timespans="trailing1", hx=True
    ),
    _case(
        "cfc-time_major-ts_T1",
        "cfc",
        kwargs={"batch_first": False},
        batch_first=False,
        timespans="plain",
    ),
    _case("cfc-unbatched-ts_T", "cfc", batch=None, timespans="plain"),
    _case("cfc-mixed-ts_1T", "cfc", kwargs={"mixed_memory": True}, timespans="plain"),
    # wired CfC
    *(
        _case(f"cfc-wired-{wname}-{mode}", "cfc", units=spec, kwargs={"mode": mode})
        for wname, spec in (("ncp", NCP), ("auto16", AUTO16), ("auto24", AUTO24))
        for mode in ("default", "pure", "no_gate")
    ),
    _case("cfc-wired-ncp-mixed-hx", "cfc", units=NCP, kwargs={"mixed_memory": True}, hx=True),
    _case("cfc-wired-auto16-proj5", "cfc", units=AUTO16, kwargs={"proj_size": 5}),
    _case("cfc-wired-ncp-last", "cfc", units=NCP, kwargs={"return_sequences": False}),
    _case(
        "cfc-wired-auto16-time_major-hx",
        "cfc",
        units=AUTO16,
        kwargs={"batch_first": False},
        batch_first=False,
        hx=True,
    ),
    _case("cfc-wired-ncp-unbatched-hx", "cfc", units=NCP, batch=None, hx=True),
    _case("cfc-wired-ncp-ts_1T1", "cfc", units=NCP, timespans="trailing1"),
    _case(
        "cfc-wired-auto24-pure-ts_1T",
        "cfc",
        units=AUTO24,
        kwargs={"mode": "pure"},
        timespans="plain",
    ),
    # LTC: wirings
    _case("ltc-units8", "ltc"),
    _case("ltc-fc8", "ltc", units=FC8),
    _case("ltc-fc8_out3", "ltc", units=FC8_OUT3),
    _case("ltc-random10", "ltc", units=RANDOM10),
    _case("ltc-ncp", "ltc", units=NCP),
    _case("ltc-auto16", "ltc", units=AUTO16),
    _case("ltc-auto24", "ltc", units=AUTO24),
    # LTC: constraints, mappings, unfolds
    _case("ltc-explicit_constraints", "ltc", kwargs={"implicit_param_constraints": False}),
    _case(
        "ltc-ncp-explicit_constraints",
        "ltc",
        units=NCP,
        kwargs={"implicit_param_constraints": False},
    ),
    *(
        _case(
            f"ltc-in_{im}-out_{om}",
            "ltc",
            units=FC8_OUT3,
            kwargs={"input_mapping": im, "output_mapping": om},
        )
        for im, om in (
            ("affine", "linear"),
            ("linear", "affine"),
            ("linear", "linear"),
            (None, "affine"),
            ("affine", None),
            (None, None),
            ("none", "none"),
        )
    ),
    _case("ltc-unfolds1", "ltc", kwargs={"ode_unfolds": 1}),
    _case("ltc-ncp-unfolds1", "ltc", units=NCP, kwargs={"ode_unfolds": 1}),
    _case("ltc-unfolds6-eps1e-4", "ltc", kwargs={"ode_unfolds": 6, "epsilon": 1e-4}),
    # LTC: memory, layouts, states
    _case("ltc-mixed", "ltc", kwargs={"mixed_memory": True}),
    _case("ltc-ncp-mixed-hx", "ltc", units=NCP, kwargs={"mixed_memory": True}, hx=True),
    _case("ltc-mixed-unbatched", "ltc", kwargs={"mixed_memory": True}, batch=None),
    _case("ltc-hx", "ltc", hx=True),
    _case("ltc-last", "ltc", kwargs={"return_sequences": False}),
    _case("ltc-ncp-last-hx", "ltc", units=NCP, kwargs={"return_sequences": False}, hx=True),
    _case("ltc-time_major", "ltc", kwargs={"batch_first": False}, batch_first=False),
    _case(
        "ltc-ncp-time_major-hx",
        "ltc",
        units=NCP,
        kwargs={"batch_first": False},
        batch_first=False,
        hx=True,
    ),
    _case("ltc-unbatched", "ltc", batch=None),
    _case("ltc-ncp-unbatched-hx", "ltc", units=NCP, batch=None, hx=True),
    # LTC: timespans (batch 1)
    _case("ltc-ts_1T", "ltc", timespans="plain"),
    _case("ltc-ts_1T1", "ltc", timespans="trailing1"),
    _case("ltc-ncp-unfolds1-ts_1T", "ltc", units=NCP, kwargs={"ode_unfolds": 1}, timespans="plain"),
    _case(
        "ltc-time_major-ts_T11",
        "ltc",
        kwargs={"batch_first": False},
        batch_first=False,
        timespans="trailing1",
    ),
    _case("ltc-unbatched-ts_T", "ltc", batch=None, timespans="plain"),
    _case("ltc-mixed-ts_1T-hx", "ltc", kwargs={"mixed_memory": True}, timespans="plain", hx=True),
]


def _build_layers(case: Case, dtype, state_dict_path=None):
    """(ncps model, liquidnets model) in eval mode, ours holding the ncps weights."""
    ref_cls, ours_cls = {
        "cfc": (ncps_torch.CfC, liquidnets.CfC),
        "ltc": (ncps_torch.LTC, liquidnets.LTC),
    }[case.layer]
    torch.manual_seed(SEED)
    ref = ref_cls(IN, _units(ncps_wirings, case.units), **case.kwargs)
    torch.manual_seed(SEED + 1)  # ours must not match by construction, only by loading
    ours = ours_cls(IN, _units(lw, case.units), **case.kwargs)
    state = ref.state_dict()
    if state_dict_path is not None:
        torch.save(state, state_dict_path)
        state = torch.load(state_dict_path, weights_only=True)
    ours.load_state_dict(state)
    return ref.to(dtype).eval(), ours.to(dtype).eval()


def _layer_inputs(case: Case, state_size: int, dtype):
    """(x, ncps (hx, timespans), liquidnets (hx, timespans)) for a case."""
    g = torch.Generator().manual_seed(SEED)
    n = 1 if case.timespans or case.batch is None else case.batch
    x = torch.randn(n, T, IN, generator=g, dtype=dtype)
    ts = torch.rand(n, T, generator=g, dtype=dtype) * 1.9 + 0.1
    h = 0.5 * torch.randn(n, state_size, generator=g, dtype=dtype)
    c = 0.5 * torch.randn(n, state_size, generator=g, dtype=dtype)
    if not case.batch_first:
        x, ts = x.transpose(0, 1).contiguous(), ts.transpose(0, 1).contiguous()
    if case.batch is None:
        batch_dim = 0 if case.batch_first else 1
        x, ts, h, c = x.squeeze(batch_dim), ts.squeeze(batch_dim), h[0], c[0]
    if case.timespans == "trailing1":
        ts = ts.unsqueeze(-1)
    ts = ts if case.timespans else None

    mixed = case.kwargs.get("mixed_memory", False)
    hx = ((h, c) if mixed else h) if case.hx else None
    ref_hx = hx
    if hx is None and dtype == torch.float64:  # ncps would start from a float32 zero state
        zeros = torch.zeros_like(h)
        ref_hx = (zeros, zeros.clone()) if mixed else zeros
    return x, (ref_hx, ts), (hx, ts)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_parity(case: Case, dtype) -> None:
    ref, ours = _build_layers(case, dtype)
    x, ref_args, ours_args = _layer_inputs(case, ref.state_size, dtype)
    _check_parity(ref, ours, x, ref_args, ours_args, dtype)


CHECKPOINT_CASES = [
    _case("cfc-bb2-dropout", "cfc", kwargs={"backbone_layers": 2, "backbone_dropout": 0.3}),
    _case("cfc-bb3-dropout", "cfc", kwargs={"backbone_layers": 3, "backbone_dropout": 0.3}),
    _case(
        "cfc-bb3-dropout-proj5-mixed",
        "cfc",
        kwargs={
            "backbone_layers": 3,
            "backbone_dropout": 0.3,
            "proj_size": 5,
            "mixed_memory": True,
        },
    ),
    _case("cfc-wired-ncp", "cfc", units=NCP),
    _case("cfc-wired-auto24-pure", "cfc", units=AUTO24, kwargs={"mode": "pure"}),
    _case("cfc-mixed", "cfc", kwargs={"mixed_memory": True}, hx=True),
    _case("ltc-ncp", "ltc", units=NCP),
    _case("ltc-mixed", "ltc", kwargs={"mixed_memory": True}),
    _case(
        "ltc-linear-none",
        "ltc",
        units=FC8_OUT3,
        kwargs={"input_mapping": "linear", "output_mapping": None},
    ),
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_checkpoint_file_from_ncps(case: Case, tmp_path) -> None:
    """torch.save(ncps.state_dict()) -> torch.load(weights_only=True) -> ours.load_state_dict."""
    ref, ours = _build_layers(case, torch.float32, state_dict_path=tmp_path / "m.pt")
    x, ref_args, ours_args = _layer_inputs(case, ref.state_size, torch.float32)
    _check_parity(ref, ours, x, ref_args, ours_args, torch.float32)


@pytest.mark.parametrize(
    "case",
    [
        _case("cfc-bb2", "cfc", kwargs={"backbone_layers": 2}),
        _case("cfc-wired-ncp", "cfc", units=NCP),
        _case("ltc-ncp-mixed", "ltc", units=NCP, kwargs={"mixed_memory": True}),
    ],
)
def test_float64_via_dtype_argument(case: Case) -> None:
    """Ours built with dtype=float64 loads a float64 ncps state_dict and matches it."""
    ref_cls = ncps_torch.CfC if case.layer == "cfc" else ncps_torch.LTC
    ours_cls = liquidnets.CfC if case.layer == "cfc" else liquidnets.LTC
    torch.manual_seed(SEED)
    ref = ref_cls(IN, _units(ncps_wirings, case.units), **case.kwargs).double().eval()
    ours = ours_cls(IN, _units(lw, case.units), **case.kwargs, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    ours.load_state_dict(ref.state_dict())
    ours.eval()
    x, ref_args, ours_args = _layer_inputs(case, ref.state_size, torch.float64)
    _check_parity(ref, ours, x, ref_args, ours_args, torch.float64)


@pytest.mark.parametrize(
    "case",
    [
        _case("cfc-bb3", "cfc", kwargs={"backbone_layers": 3}),
        _case("cfc-wired-ncp", "cfc", units=NCP),
        _case("ltc-ncp", "ltc", units=NCP),
        _case("ltc-mixed", "ltc", kwargs={"mixed_memory": True}),
    ],
)
def test_parity_check_detects_a_perturbed_weight(case: Case) -> None:
    """The comparison is not vacuous: nudging one loaded weight of ours makes it fail."""
    ref, ours = _build_layers(case, torch.float32)
    x, ref_args, ours_args = _layer_inputs(case, ref.state_size, torch.float32)
    _check_parity(ref, ours, x, ref_args, ours_args, torch.float32)  # passes as loaded

    ref, ours = _build_layers(case, torch.float32)
    pairs = _param_pairs(ref, ours)
    with torch.no_grad():
        dict(ours.named_parameters())[pairs[0][1]].add_(1e-2)
    with pytest.raises(AssertionError):
        _check_parity(ref, ours, x, ref_args, ours_args, torch.float32, pairs)


# --------------------------------------------------------------------------------------------
# LTC explicit weight constraints
# --------------------------------------------------------------------------------------------

CONSTRAINED = ("w", "cm", "gleak", "sensory_w")


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("via", ["layer", "rnn_cell"])
@pytest.mark.parametrize("units", [pytest.param(8, id="units8"), pytest.param(NCP, id="ncp")])
def test_ltc_apply_weight_constraints(units, via: str, implicit: bool) -> None:
    kwargs = {"implicit_param_constraints": implicit}
    torch.manual_seed(SEED)
    ref = ncps_torch.LTC(IN, _units(ncps_wirings, units), **kwargs)
    with torch.no_grad():
        for name in CONSTRAINED:
            getattr(ref.rnn_cell, name)[..., ::2] *= -1.0  # every other entry negative
    ours = liquidnets.LTC(IN, _units(lw, units), **kwargs)
    ours.load_state_dict(ref.state_dict())

    ref.rnn_cell.apply_weight_constraints()
    if via == "layer":
        ours.apply_weight_constraints()
    else:
        ours.rnn_cell.apply_weight_constraints()

    ref_params, ours_params = dict(ref.named_parameters()), dict(ours.named_parameters())
    for name in CONSTRAINED:
        p_ref = ref_params[f"rnn_cell.{name}"]
        # the oracle clips only in explicit mode: the test data must exercise that
        assert bool((p_ref < 0).any()) == implicit, name
        torch.testing.assert_close(ours_params[f"rnn_cell.{name}"], p_ref, atol=0, rtol=0)
    case = Case("ltc", units=units, kwargs=kwargs, hx=True)
    x, ref_args, ours_args = _layer_inputs(case, ref.state_size, torch.float32)
    _check_parity(ref.eval(), ours.eval(), x, ref_args, ours_args, torch.float32)


# --------------------------------------------------------------------------------------------
# Cells, one step
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellCase:
    cell: str  # "cfc", "wired" or "ltc"
    wiring: Any = None  # wiring spec for "wired" and "ltc"
    kwargs: dict = dataclasses.field(default_factory=dict)


def _cell(case_id: str, cell: str, **fields):
    return pytest.param(CellCase(cell, **fields), id=case_id)


CELL_CASES = [
    _cell("cfccell-default", "cfc"),
    _cell("cfccell-pure", "cfc", kwargs={"mode": "pure"}),
    _cell("cfccell-no_gate", "cfc", kwargs={"mode": "no_gate"}),
    _cell("cfccell-bb0", "cfc", kwargs={"backbone_layers": 0}),
    _cell(
        "cfccell-bb2-dropout-gelu",
        "cfc",
        kwargs={
            "backbone_layers": 2,
            "backbone_units": 16,
            "backbone_dropout": 0.3,
            "backbone_activation": "gelu",
        },
    ),
    _cell(
        "cfccell-bb3-silu",
        "cfc",
        kwargs={"backbone_layers": 3, "backbone_units": 16, "backbone_activation": "silu"},
    ),
    _cell(
        "cfccell-sparse-bb0", "cfc", kwargs={"backbone_layers": 0, "sparsity_mask": SPARSITY_MASK}
    ),
    _cell(
        "cfccell-sparse-bb0-pure",
        "cfc",
        kwargs={"mode": "pure", "backbone_layers": 0, "sparsity_mask": SPARSITY_MASK},
    ),
    _cell("wiredcell-ncp-default", "wired", wiring=NCP),
    _cell("wiredcell-ncp-pure", "wired", wiring=NCP, kwargs={"mode": "pure"}),
    _cell("wiredcell-auto16-no_gate", "wired", wiring=AUTO16, kwargs={"mode": "no_gate"}),
    _cell("wiredcell-auto24-default", "wired", wiring=AUTO24),
    _cell("ltccell-fc8", "ltc", wiring=FC8),
    _cell(
        "ltccell-fc8_out3-implicit",
        "ltc",
        wiring=FC8_OUT3,
        kwargs={"implicit_param_constraints": True},
    ),
    _cell("ltccell-random10", "ltc", wiring=RANDOM10),
    _cell("ltccell-ncp", "ltc", wiring=NCP),
    _cell(
        "ltccell-auto16-linear-none-unfolds1",
        "ltc",
        wiring=AUTO16,
        kwargs={"input_mapping": "linear", "output_mapping": None, "ode_unfolds": 1},
    ),
]

# elapsed-time variants: name -> (batch size, maker); (B,) tensors only where ncps handles them
TIMESTEPS = {
    "float": (B, lambda n, dtype, g: 0.7),
    "scalar_tensor": (B, lambda n, dtype, g: torch.tensor(0.7, dtype=dtype)),
    "B1_tensor": (B, lambda n, dtype, g: torch.rand(n, 1, generator=g, dtype=dtype) * 1.9 + 0.1),
    "B_tensor_b1": (1, lambda n, dtype, g: torch.rand(n, generator=g, dtype=dtype) * 1.9 + 0.1),
}


def _make_cell(torch_module, wirings_module, case: CellCase):
    if case.cell == "cfc":
        return torch_module.CfCCell(IN, HIDDEN, **case.kwargs)
    wiring = _units(wirings_module, case.wiring)
    if case.cell == "wired":
        return torch_module.WiredCfCCell(IN, wiring, **case.kwargs)
    return torch_module.LTCCell(wiring, IN, **case.kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("timestep", list(TIMESTEPS))
@pytest.mark.parametrize("case", CELL_CASES)
def test_cell_parity(case: CellCase, timestep: str, dtype) -> None:
    torch.manual_seed(SEED)
    ref = _make_cell(ncps_torch, ncps_wirings, case)
    torch.manual_seed(SEED + 1)
    ours = _make_cell(liquidnets, lw, case)
    ours.load_state_dict(ref.state_dict())
    ref, ours = ref.to(dtype).eval(), ours.to(dtype).eval()

    n, make_ts = TIMESTEPS[timestep]
    state_size = HIDDEN if case.cell == "cfc" else ref.state_size
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, IN, generator=g, dtype=dtype)
    hx = 0.5 * torch.randn(n, state_size, generator=g, dtype=dtype)
    ts = make_ts(n, dtype, g)
    _check_parity(ref, ours, x, (hx, ts), (hx.clone(), ts), dtype)


# --------------------------------------------------------------------------------------------
# Wirings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        FC8,
        FC8_OUT3,
        ("FullyConnected", (8,), {"self_connections": False, "erev_init_seed": 5}),
        RANDOM10,
        ("Random", (10,), {"output_dim": 4, "sparsity_level": 0.2, "random_seed": 5}),
        NCP,
        ("NCP", (10, 8, 4, 4, 4, 4, 3), {"seed": 7}),
        AUTO16,
        AUTO24,
    ],
    ids=lambda spec: f"{spec[0]}{spec[1]}{spec[2] or ''}".replace(" ", ""),
)
def test_wiring_matches_ncps(spec) -> None:
    ref, ours = _units(ncps_wirings, spec), _units(lw, spec)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    ref.build(IN)
    ours.build(IN)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    assert (ours.units, ours.input_dim, ours.output_dim) == (
        ref.units,
        ref.input_dim,
        ref.output_dim,
    )
    assert ours.num_layers == ref.num_layers
    for layer in range(ref.num_layers):
        assert list(ours.get_neurons_of_layer(layer)) == list(ref.get_neurons_of_layer(layer))
