"""Invariants shared by every sequence layer and mode: layouts, streaming, irregular time,
dtype/device, determinism, gradients and input checks."""

import pytest
import torch

from liquidnets import LTC, CfC
from liquidnets.wirings import NCP, AutoNCP, FullyConnected, Random

C = 4  # input features

# name -> factory of a small model (kept tiny so gradcheck and loops stay fast)
MODELS = {
    "cfc": lambda **kw: CfC(C, 6, backbone_units=8, **kw),
    "cfc_pure": lambda **kw: CfC(C, 6, mode="pure", backbone_units=8, **kw),
    "cfc_no_gate": lambda **kw: CfC(C, 6, mode="no_gate", backbone_units=8, **kw),
    "cfc_no_backbone": lambda **kw: CfC(C, 6, backbone_layers=0, **kw),
    "cfc_deep_silu": lambda **kw: CfC(
        C, 6, backbone_units=8, backbone_layers=2, activation="silu", **kw
    ),
    "cfc_proj": lambda **kw: CfC(C, 6, proj_size=2, backbone_units=8, **kw),
    "cfc_mixed": lambda **kw: CfC(C, 6, mixed_memory=True, backbone_units=8, **kw),
    "cfc_autoncp": lambda **kw: CfC(C, AutoNCP(8, 2), **kw),
    "cfc_fc_wired": lambda **kw: CfC(C, FullyConnected(6, 2), **kw),
    "cfc_random_wired": lambda **kw: CfC(C, Random(6, 3, sparsity_level=0.5), mode="no_gate", **kw),
    "cfc_ncp_pure": lambda **kw: CfC(C, NCP(3, 3, 2, 2, 2, 2, 2), mode="pure", **kw),
    "ltc": lambda **kw: LTC(C, 5, ode_unfolds=3, **kw),
    "ltc_explicit": lambda **kw: LTC(C, 5, ode_unfolds=2, implicit_param_constraints=False, **kw),
    "ltc_random": lambda **kw: LTC(C, Random(5, sparsity_level=0.5), ode_unfolds=2, **kw),
    "ltc_autoncp_proj": lambda **kw: LTC(C, AutoNCP(8, 2), ode_unfolds=2, proj_size=3, **kw),
    "ltc_mixed": lambda **kw: LTC(C, 5, mixed_memory=True, ode_unfolds=2, **kw),
    "ltc_rk4": lambda **kw: LTC(C, FullyConnected(5, 2), ode_unfolds=6, solver="rk4", **kw),
    "ltc_euler_linear": lambda **kw: LTC(
        C, 5, ode_unfolds=12, solver="euler", input_mapping="linear", output_mapping=None, **kw
    ),
}


def make(name, **kw):
    torch.manual_seed(0)
    return MODELS[name](**kw).eval()


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_state_close(a, b, **kw):
    for x, y in zip(as_tuple(a), as_tuple(b), strict=True):
        torch.testing.assert_close(x, y, **kw)


def irregular(batch, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.1 + 1.9 * torch.rand(batch, steps, generator=g)


@pytest.mark.parametrize("name", MODELS)
def test_shapes_of_every_layout(name):
    model = make(name)
    x = torch.randn(3, 5, C)
    out, h = model(x)
    assert out.shape == (3, 5, model.out_features)
    for s in as_tuple(h):
        assert s.shape == (3, model.state_size)
    seq_first, _ = make(name, batch_first=False)(x.transpose(0, 1))
    torch.testing.assert_close(seq_first, out.transpose(0, 1))
    last, _ = make(name, return_sequences=False)(x)
    torch.testing.assert_close(last, out[:, -1])
    single, h1 = model(x[0])  # unbatched (T, C)
    torch.testing.assert_close(single, out[0])
    for s, full in zip(as_tuple(h1), as_tuple(h), strict=True):
        torch.testing.assert_close(s, full[0])


@pytest.mark.parametrize("name", MODELS)
def test_step_by_step_equals_the_sequence_call(name):
    model = make(name)
    x, ts = torch.randn(3, 7, C), irregular(3, 7)
    out, h_n = model(x, timespans=ts)
    h = model.init_state(3)
    for t in range(7):
        y, h = model.step(x[:, t], h, ts[:, t])
        torch.testing.assert_close(y, out[:, t])
    assert_state_close(h, h_n)
    # unbatched streaming with a scalar dt
    h = model.init_state()
    for t in range(7):
        y, h = model.step(x[0, t], h, float(ts[0, t]))
    torch.testing.assert_close(y, out[0, -1])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("ts_shape", ["(B, T)", "(B, T, 1)"])
def test_irregular_batch_equals_each_sample_alone(name, ts_shape):
    # ncps 1.0.1 crashes or silently mixes batch entries with units here (its issues #81-#83).
    model = make(name)
    x, ts = torch.randn(4, 6, C), irregular(4, 6)
    ts_in = ts if ts_shape == "(B, T)" else ts.unsqueeze(-1)
    out, h_n = model(x, timespans=ts_in)
    for b in range(4):
        alone, h_b = model(x[b : b + 1], timespans=ts[b : b + 1])
        torch.testing.assert_close(out[b : b + 1], alone)
        assert_state_close(tuple(s[b : b + 1] for s in as_tuple(h_n)), as_tuple(h_b))
    # and time matters: a different timespan gives a different result
    other, _ = model(x, timespans=ts_in * 2)
    assert not torch.allclose(other, out)


def test_batch_equal_to_units_is_not_confused():
    # With B == H, broadcasting a (B,) timespan against (B, H) would pair batch with units.
    model = make("cfc")
    x, ts = torch.randn(6, 5, C), irregular(6, 5)
    out, _ = model(x, timespans=ts)
    alone, _ = model(x[2:3], timespans=ts[2:3])
    torch.testing.assert_close(out[2:3], alone)


@pytest.mark.parametrize("name", MODELS)
def test_timespans_layouts_and_constants(name):
    model = make(name)
    x, ts = torch.randn(2, 4, C), irregular(2, 4)
    out, _ = model(x, timespans=ts)
    seq_first, _ = make(name, batch_first=False)(x.transpose(0, 1), timespans=ts.T)
    torch.testing.assert_close(seq_first.transpose(0, 1), out)
    ones, _ = model(x, timespans=torch.ones(2, 4))
    torch.testing.assert_close(ones, model(x)[0])
    torch.testing.assert_close(
        model(x, timespans=0.5)[0], model(x, timespans=torch.full((2, 4), 0.5))[0]
    )


@pytest.mark.parametrize("name", MODELS)
def test_float64_gradcheck(name):
    model = make(name, dtype=torch.float64)
    x = torch.randn(2, 3, C, dtype=torch.float64, requires_grad=True)
    ts = irregular(2, 3).double().requires_grad_(True)
    h0 = tuple(
        (0.1 * torch.randn(2, model.state_size, dtype=torch.float64)).requires_grad_(True)
        for _ in as_tuple(model.init_state(2))
    )

    def run(x, ts, *h):
        out, h_n = model(x, h if model.use_mixed else h[0], ts)
        return (out, *as_tuple(h_n))

    assert torch.autograd.gradcheck(run, (x, ts, *h0), atol=1e-6)


@pytest.mark.parametrize("name", ["cfc", "cfc_mixed", "cfc_autoncp", "ltc_autoncp_proj", "ltc"])
def test_factory_kwargs(name):
    model = make(name, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert {b.dtype for b in model.buffers()} <= {torch.float64}
    out, _ = model(torch.randn(2, 3, C, dtype=torch.float64))
    assert out.dtype == torch.float64
    meta = MODELS[name](device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    assert {b.device.type for b in meta.buffers()} <= {"meta"}


@pytest.mark.parametrize("name", MODELS)
def test_seeded_determinism(name):
    a, b = make(name), make(name)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    x = torch.randn(2, 3, C)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=0, atol=0)
    torch.manual_seed(1)
    c = MODELS[name]()
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_backbone_dropout_acts_with_one_layer():
    torch.manual_seed(0)
    model = CfC(C, 6, backbone_units=16, backbone_layers=1, backbone_dropout=0.5)
    x = torch.randn(2, 5, C)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and dropouts[0].p == 0.5


def test_explicit_weight_constraints_clip_at_zero():
    model = make("ltc_explicit")
    with torch.no_grad():
        for name in ("w", "sensory_w", "cm", "gleak"):
            getattr(model.rnn_cell, name).sub_(10.0)
    model.apply_weight_constraints()
    for name in ("w", "sensory_w", "cm", "gleak"):
        assert float(getattr(model.rnn_cell, name).detach().min()) == 0.0
    assert float(model.rnn_cell.vleak.detach().min()) < 0  # unconstrained parameters are left alone


@pytest.mark.parametrize("name", ["cfc", "ltc", "cfc_mixed"])
def test_bad_input_gets_a_clear_value_error(name):
    model = make(name)
    x = torch.randn(2, 3, C)
    H = model.state_size
    with pytest.raises(ValueError, match=f"expected {C} input features.*got 5"):
        model(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="must have 2 or 3 dimensions"):
        model(torch.randn(2, 3, 1, C))
    with pytest.raises(ValueError, match="no time steps"):
        model(torch.randn(2, 0, C))
    bad_h = torch.zeros(3, H)
    with pytest.raises(ValueError, match=rf"must have shape \(2, {H}\); got \(3, {H}\)"):
        model(x, (bad_h, bad_h) if model.use_mixed else bad_h)
    with pytest.raises(ValueError, match="must have shape"):
        h = torch.zeros(2, H + 1)
        model(x, (h, h) if model.use_mixed else h)
    if model.use_mixed:
        with pytest.raises(ValueError, match=r"mixed_memory=True takes hx=\(h0, c0\)"):
            model(x, torch.zeros(2, H))
    else:
        with pytest.raises(ValueError, match="takes hx as one tensor"):
            model(x, (torch.zeros(2, H), torch.zeros(2, H)))
    with pytest.raises(ValueError, match=r"finite and >= 0; got -0.5 at index \(1, 2\)"):
        ts = torch.ones(2, 3)
        ts[1, 2] = -0.5
        model(x, timespans=ts)
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            model(x, timespans=torch.full((2, 3), value))
    with pytest.raises(ValueError, match="finite and >= 0"):
        model(x, timespans=-1.0)
    with pytest.raises(ValueError, match=r"timespans must have shape \(2, 3\)"):
        model(x, timespans=torch.ones(3, 2))
    with pytest.raises(ValueError, match="finite and >= 0"):
        model.step(x[:, 0], None, -1.0)


def test_constructor_errors():
    with pytest.raises(ValueError, match="unknown CfC mode 'fast'"):
        CfC(3, 4, mode="fast")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        CfC(3, 4, activation="swish")
    with pytest.raises(ValueError, match="backbone_units cannot be used with a wiring"):
        CfC(3, AutoNCP(10, 2), backbone_units=8)
    with pytest.raises(ValueError, match="units must be a positive integer"):
        CfC(3, 0)
    with pytest.raises(ValueError, match="input_mapping must be 'affine', 'linear' or None"):
        LTC(3, 4, input_mapping="log")
    with pytest.raises(ValueError, match="ode_unfolds must be >= 1"):
        LTC(3, 4, ode_unfolds=0)
    with pytest.raises(ValueError, match="unknown ODE solver"):
        LTC(3, 4, solver="dopri5")


def test_one_wiring_serves_several_layers():
    # ncps raises "Conflicting input dimensions" here.
    wiring = AutoNCP(12, 3)
    a, b = CfC(5, wiring), LTC(9, wiring, ode_unfolds=1)
    assert a(torch.randn(2, 4, 5))[0].shape == (2, 4, 3)
    assert b(torch.randn(2, 4, 9))[0].shape == (2, 4, 3)
    assert wiring.input_dim == 5 and a.wiring is wiring  # the first layer builds it in place
    assert b.wiring.input_dim == 9 and b.wiring is not wiring
