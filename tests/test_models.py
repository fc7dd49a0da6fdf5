"""The task models: one interface, matched baselines, the naive forecasts."""

import pytest
import torch

from liquidnets.tasks import models


@pytest.mark.parametrize("name", models.LIQUID + models.RECURRENT)
def test_every_trainable_model_maps_windows_to_outputs(name):
    net = models.build(name, n_inputs=3, n_outputs=5, units=12)
    x, dt = torch.randn(4, 9, 3), torch.rand(4, 9) + 0.5
    out = net(x, dt)
    assert out.shape == (4, 5)
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_liquid_models_read_the_elapsed_time():
    torch.manual_seed(0)
    net = models.build("cfc", n_inputs=2, n_outputs=1, units=8)
    x = torch.randn(2, 6, 2)
    assert not torch.allclose(net(x, torch.ones(2, 6)), net(x, 3 * torch.ones(2, 6)))


@pytest.mark.parametrize("kind", models.RECURRENT)
def test_baselines_match_the_parameter_budget(kind):
    liquid = models.build("cfc", n_inputs=4, n_outputs=2, units=32)
    budget = models.parameter_count(liquid)
    base = models.build(kind, n_inputs=4, n_outputs=2, units=32)
    assert abs(models.parameter_count(base) - budget) / budget < 0.1


def test_naive_repeats_the_last_value_and_seasonal_naive_the_last_season():
    x = torch.arange(10.0).reshape(1, 10, 1).repeat(1, 1, 2)  # targets 0..9 in column 1
    naive = models.build("naive", n_inputs=2, n_outputs=3, target_index=[1], horizon=3)
    assert naive(x, torch.ones(1, 10)).tolist() == [[9.0, 9.0, 9.0]]
    seasonal = models.build(
        "seasonal_naive", n_inputs=2, n_outputs=5, target_index=[1], horizon=5, season=3
    )
    # steps 10, 11, 12 repeat 7, 8, 9; steps 13, 14 repeat 7, 8 again
    assert seasonal(x, torch.ones(1, 10)).tolist() == [[7.0, 8.0, 9.0, 7.0, 8.0]]


def test_unknown_models_are_named():
    with pytest.raises(ValueError, match="unknown model 'cfcc'; choose one of: cfc, ltc"):
        models.build("cfcc", n_inputs=1, n_outputs=1)


@pytest.mark.parametrize("name", ["cfc", "ltc-ncp", "lstm"])
def test_the_seed_fixes_the_initial_weights(name):
    before = torch.random.get_rng_state()
    a = models.build(name, n_inputs=3, n_outputs=2, units=8, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    torch.rand(7)  # whatever the global RNG does in between
    b = models.build(name, n_inputs=3, n_outputs=2, units=8, seed=4)
    c = models.build(name, n_inputs=3, n_outputs=2, units=8, seed=5)
    same = lambda m, n: all(torch.equal(p, q) for p, q in zip(m.parameters(), n.parameters()))  # noqa: E731
    assert same(a, b) and not same(a, c)
