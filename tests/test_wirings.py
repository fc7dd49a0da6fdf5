"""Wirings: parity with ncps 1.0.1, config round trips, for_input, errors, graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liquidnets import wirings as lw
from liquidnets.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring, wiring_from_config

ncps_wirings = pytest.importorskip("ncps.wirings")

# (class name, args, kwargs): every class, several sizes and seeds, defaults included
CASES = [
    ("FullyConnected", (1,), {}),
    ("FullyConnected", (6,), {}),
    ("FullyConnected", (7,), {"output_dim": 2, "erev_init_seed": 3}),
    ("FullyConnected", (9,), {"output_dim": 4, "erev_init_seed": 12345, "self_connections": False}),
    ("Random", (8,), {}),
    ("Random", (8,), {"output_dim": 3, "sparsity_level": 0.5, "random_seed": 7}),
    ("Random", (13,), {"sparsity_level": 0.9, "random_seed": 2}),
    ("Random", (3,), {"output_dim": 1, "sparsity_level": 0.99, "random_seed": 5}),
    ("Random", (120,), {"sparsity_level": 0.1, "random_seed": 8}),  # Generator's other branch
    ("NCP", (10, 10, 8, 6, 6, 4, 6), {}),
    ("NCP", (5, 4, 2, 3, 2, 3, 2), {"seed": 1}),
    ("NCP", (3, 8, 1, 1, 1, 0, 8), {"seed": 99}),
    ("NCP", (20, 3, 6, 2, 1, 10, 1), {"seed": 4}),  # sparse: many unreached neurons
    ("NCP", (10, 3, 2, 1, 2, 2, 1), {"seed": 5}),
    ("AutoNCP", (16, 4), {}),
    ("AutoNCP", (24, 6), {"sparsity_level": 0.1, "seed": 3}),
    ("AutoNCP", (5, 2), {"sparsity_level": 1.0, "seed": 11}),
    ("AutoNCP", (64, 10), {"sparsity_level": 0.8, "seed": 123}),
    ("AutoNCP", (40, 30), {"sparsity_level": 0.33, "seed": 0}),
]
INPUT_DIMS = [1, 2, 5, 17]


def _pair(name, args, kwargs):
    return getattr(lw, name)(*args, **kwargs), getattr(ncps_wirings, name)(*args, **kwargs)


def _same_matrices(a, b):
    assert a.adjacency_matrix.dtype == np.int32
    np.testing.assert_array_equal(a.adjacency_matrix, b.adjacency_matrix)
    if b.sensory_adjacency_matrix is None:
        assert a.sensory_adjacency_matrix is None
    else:
        assert a.sensory_adjacency_matrix.dtype == np.int32
        np.testing.assert_array_equal(a.sensory_adjacency_matrix, b.sensory_adjacency_matrix)


@pytest.mark.parametrize("input_dim", INPUT_DIMS)
@pytest.mark.parametrize(("name", "args", "kwargs"), CASES)
def test_parity_with_ncps(name, args, kwargs, input_dim):
    ours, ref = _pair(name, args, kwargs)
    _same_matrices(ours, ref)  # before build: FullyConnected and Random draw in __init__
    ours.build(input_dim)
    ref.build(input_dim)
    _same_matrices(ours, ref)
    assert ours.is_built() and ref.is_built()
    assert (ours.units, ours.input_dim, ours.output_dim) == (
        ref.units,
        ref.input_dim,
        ref.output_dim,
    )
    assert ours.num_layers == ref.num_layers
    for layer in range(ref.num_layers):
        assert ours.get_neurons_of_layer(layer) == list(ref.get_neurons_of_layer(layer))
    for i in range(ref.units):
        assert ours.get_type_of_neuron(i) == ref.get_type_of_neuron(i)
    assert ours.synapse_count == ref.synapse_count
    assert ours.sensory_synapse_count == ref.sensory_synapse_count
    np.testing.assert_array_equal(ours.erev_initializer(), ref.erev_initializer())
    np.testing.assert_array_equal(ours.sensory_erev_initializer(), ref.sensory_erev_initializer())


@pytest.mark.parametrize("seed", range(25))
def test_parity_many_seeds(seed):
    rng = np.random.default_rng(seed)
    units = int(rng.integers(6, 40))
    output = int(rng.integers(1, units - 3))
    sparsity = float(rng.uniform(0.1, 1.0))
    input_dim = int(rng.integers(1, 12))
    for name, args, kwargs in [
        ("FullyConnected", (units,), {"output_dim": output, "erev_init_seed": seed}),
        ("Random", (units,), {"sparsity_level": sparsity * 0.99, "random_seed": seed}),
        ("AutoNCP", (units, output), {"sparsity_level": sparsity, "seed": seed}),
    ]:
        ours, ref = _pair(name, args, kwargs)
        ours.build(input_dim)
        ref.build(input_dim)
        _same_matrices(ours, ref)


@pytest.mark.parametrize("seed", [12, 76, 115])
def test_parity_ncp_unreached_command_neurons(seed):
    # With these seeds some command neuron gets no inter synapse, and the fan-in it then draws,
    # int(20 * 1 / 4) = 5, is capped by ncps at the command count (4), not the inter count.
    ours, ref = _pair("NCP", (20, 4, 1, 2, 1, 2, 1), {"seed": seed})
    ours.build(3)
    ref.build(3)
    _same_matrices(ours, ref)


def test_build_twice_same_dim_is_idempotent():
    w = Random(6, sparsity_level=0.3).build(4)
    before = w.sensory_adjacency_matrix.copy()
    assert w.build(4) is w
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, before)


def test_set_input_dim_then_build_draws_sensory_synapses_like_ncps():
    ours, ref = _pair("FullyConnected", (5,), {})
    ours.set_input_dim(3)
    ref.set_input_dim(3)
    ours.build(3)
    ref.build(3)
    _same_matrices(ours, ref)


# ------------------------------------------------------------------------------------ config


def _hand_built():
    w = Wiring(4)
    w.set_output_dim(2)
    w.add_synapse(0, 1, 1)
    w.add_synapse(3, 3, -1)
    w.build(3)
    w.add_sensory_synapse(2, 0, -1)
    return w


ROUND_TRIP = [
    lambda: FullyConnected(5, output_dim=2, erev_init_seed=4, self_connections=False),
    lambda: Random(7, sparsity_level=0.4, random_seed=9),
    lambda: NCP(6, 4, 2, 3, 2, 3, 2, seed=5),
    lambda: AutoNCP(20, 5, sparsity_level=0.7, seed=8),
    _hand_built,
]


@pytest.mark.parametrize("built", [False, True])
@pytest.mark.parametrize("make", ROUND_TRIP)
def test_config_round_trip(make, built):
    w = make()
    if built:
        w.for_input(3)  # the hand-built one is built already, for 3
    config = json.loads(json.dumps(w.get_config()))
    assert config["class_name"] == type(w).__name__
    for restore in (wiring_from_config, type(w).from_config, Wiring.from_config):
        w2 = restore(config)
        assert type(w2) is type(w)
        assert w2.get_config() == config
        w.for_input(3)
        w2.for_input(3)
        _same_matrices(w2, w)
        assert w2.output_dim == w.output_dim


def test_unbuilt_hand_wiring_round_trip():
    w = Wiring(3)
    w.add_synapse(1, 2, -1)
    w2 = wiring_from_config(json.loads(json.dumps(w.get_config())))
    assert not w2.is_built() and w2.output_dim is None
    _same_matrices(w2, w)


def test_none_seed_is_recorded():
    w = NCP(4, 3, 2, 2, 2, 2, 2, seed=None).build(3)
    w2 = wiring_from_config(w.get_config())
    assert isinstance(w.get_config()["seed"], int)
    _same_matrices(w2, w)


@pytest.mark.parametrize(
    "ref",
    [
        lambda: ncps_wirings.FullyConnected(5, output_dim=2, erev_init_seed=4),
        lambda: ncps_wirings.Random(6, sparsity_level=0.5, random_seed=3),
        lambda: ncps_wirings.AutoNCP(12, 3, seed=2),
    ],
)
def test_ncps_configs_are_accepted(ref):
    ref = ref()
    config = json.loads(json.dumps(ref.get_config()))
    ours = getattr(lw, type(ref).__name__).from_config(config)
    assert type(wiring_from_config(config)) is type(ours)
    ours.build(4)
    ref.build(4)
    _same_matrices(ours, ref)


def test_ncps_hand_wiring_config_is_accepted():
    ref = ncps_wirings.Wiring(3)
    ref.add_synapse(0, 2, -1)
    ref.build(2)
    ref.add_sensory_synapse(1, 1, 1)
    ref.set_output_dim(1)
    _same_matrices(wiring_from_config(ref.get_config()), ref)


def test_ncps_ncp_config_is_refused():
    ref = ncps_wirings.NCP(6, 4, 2, 3, 2, 3, 2)
    with pytest.raises(ValueError, match=r"ncps 1\.0\.1 NCP config .* cannot reproduce"):
        wiring_from_config(ref.get_config())


def test_from_config_class_mismatch():
    with pytest.raises(ValueError, match="the config is for Random; use wiring_from_config"):
        NCP.from_config(Random(4).get_config())
    with pytest.raises(ValueError, match="unknown wiring class 'Nope'"):
        wiring_from_config({"class_name": "Nope"})
    with pytest.raises(ValueError, match="adjacency_matrix must be of shape \\(2, 2\\)"):
        wiring_from_config({"units": 2, "adjacency_matrix": [[0, 2], [0, 0]]})


# --------------------------------------------------------------------------------- for_input


@pytest.mark.parametrize("make", ROUND_TRIP[:4])
def test_for_input_shares_and_copies(make):
    w = make()
    a = w.for_input(3)
    assert a is w and w.input_dim == 3
    assert w.for_input(3) is w
    before = w.get_config()
    b = w.for_input(5)
    assert b is not w and type(b) is type(w)
    assert (w.input_dim, b.input_dim) == (3, 5)
    assert w.get_config() == before  # the original is untouched
    fresh_a, fresh_b = make().build(3), make().build(5)
    _same_matrices(a, fresh_a)
    _same_matrices(b, fresh_b)
    b.add_synapse(0, 0, -1)  # independent matrices
    assert b.adjacency_matrix is not a.adjacency_matrix


def test_for_input_hand_wiring():
    w = _hand_built()
    assert w.for_input(3) is w
    with pytest.raises(
        ValueError, match="set by hand, so they cannot be regenerated for input_dim 4"
    ):
        w.for_input(4)
    fresh = Wiring(2)
    assert fresh.for_input(6) is fresh and fresh.input_dim == 6


def test_build_conflict_points_to_for_input():
    w = AutoNCP(10, 3).build(2)
    with pytest.raises(ValueError, match=r"Conflicting input dimensions.*for_input\(4\)"):
        w.build(4)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: NCP(8, 6, 2, 12, 2, 3, 2),
            r"NCP: sensory_fanout \(12\) must be at most the number of inter neurons \(8\)",
        ),
        (
            lambda: NCP(8, 6, 2, 3, 7, 3, 2),
            r"NCP: inter_fanout \(7\) must be at most the number of command neurons \(6\)",
        ),
        (
            lambda: NCP(8, 6, 2, 3, 2, 3, 9),
            r"NCP: motor_fanin \(9\) must be at most the number of command neurons \(6\)",
        ),
        (lambda: NCP(0, 6, 2, 1, 2, 3, 2), r"NCP: inter_neurons \(0\) must be at least 1"),
        (lambda: NCP(8, 0, 2, 1, 1, 3, 1), r"NCP: command_neurons \(0\) must be at least 1"),
        (lambda: NCP(8, 6, 0, 1, 2, 3, 2), r"NCP: motor_neurons \(0\) must be at least 1"),
        (lambda: NCP(8, 6, 2, 0, 2, 3, 2), r"NCP: sensory_fanout \(0\) must be at least 1"),
        (
            lambda: NCP(8, 6, 2, 1, 2, -1, 2),
            r"recurrent_command_synapses \(-1\) must be at least 0",
        ),
        (
            lambda: Random(4, sparsity_level=1.0),
            r"Random: sparsity_level \(1.0\) must be in \[0, 1\)",
        ),
        (lambda: Random(4, sparsity_level=-0.1), r"sparsity_level \(-0.1\) must be in \[0, 1\)"),
        (
            lambda: AutoNCP(10, 3, sparsity_level=1.5),
            r"AutoNCP: sparsity_level \(1.5\) must be between 0.0 and 1.0",
        ),
        (lambda: AutoNCP(10, 3, sparsity_level=-0.01), r"between 0.0 and 1.0"),
        (
            lambda: AutoNCP(10, 8),
            r"AutoNCP: output_size \(8\) must be less than units - 2 \(10 - 2 = 8\)",
        ),
        (lambda: AutoNCP(10, 0), r"AutoNCP: output_size \(0\) must be at least 1"),
        (lambda: FullyConnected(0), r"FullyConnected: units \(0\) must be at least 1"),
        (lambda: FullyConnected(4, output_dim=5), r"output_dim \(5\) must be at most units \(4\)"),
        (
            lambda: Wiring(3).add_synapse(3, 0, 1),
            r"add_synapse: src \(3\) must be in \[0, units=3\)",
        ),
        (lambda: Wiring(3).add_synapse(0, -1, 1), r"add_synapse: dest \(-1\) must be in \[0"),
        (lambda: Wiring(3).add_synapse(0, 1, 0), r"polarity \(0\) must be -1 .* or \+1"),
        (
            lambda: Wiring(3).add_sensory_synapse(0, 1, 1),
            r"add_sensory_synapse: the input size is not known yet; call build\(input_dim\) first",
        ),
        (
            lambda: Wiring(3).build(2).add_sensory_synapse(2, 1, 1),
            r"add_sensory_synapse: src \(2\) must be in \[0, input_dim=2\)",
        ),
        (lambda: Wiring(3).build(2).add_sensory_synapse(0, 1, 2), r"polarity \(2\) must be -1"),
        (lambda: Wiring(3).build(0), r"Wiring: input_dim \(0\) must be at least 1"),
        (lambda: Wiring(3).get_graph(), r"get_graph: this Wiring is not built yet"),
        (lambda: NCP(4, 3, 2, 2, 2, 1, 2).get_neurons_of_layer(3), r"layer_id \(3\) must be in"),
        (lambda: Wiring(3).sensory_erev_initializer(), r"no sensory synapses before build"),
    ],
)
def test_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_autoncp_accepts_what_ncps_accepts_and_low_sparsity():
    for s in (0.1, 0.5, 1.0):
        AutoNCP(10, 3, sparsity_level=s)
        ncps_wirings.AutoNCP(10, 3, sparsity_level=s)
    w = AutoNCP(10, 3, sparsity_level=0.0).build(4)  # ncps refuses below 0.1; it works here
    same = NCP(
        *(len(w.get_neurons_of_layer(i)) for i in range(3)),
        sensory_fanout=5,
        inter_fanout=2,
        recurrent_command_synapses=4,
        motor_fanin=2,
    ).build(4)
    _same_matrices(w, same)


def test_non_integer_sizes_are_type_errors():
    with pytest.raises(TypeError, match=r"units must be an integer, got 4\.5"):
        Wiring(4.5)


# ------------------------------------------------------------------------------------- graph


@pytest.mark.parametrize("make", ROUND_TRIP)
def test_get_graph(make):
    pytest.importorskip("networkx")
    w = make().for_input(3)
    graph = w.get_graph()
    assert graph.number_of_nodes() == w.units + w.input_dim
    assert graph.number_of_edges() == w.synapse_count + w.sensory_synapse_count
    kinds = {w.get_type_of_neuron(i) for i in range(w.units)} | {"sensory"}
    assert {t for _, t in graph.nodes(data="neuron_type")} == kinds
    for a, b, polarity in graph.edges(data="polarity"):
        matrix = w.sensory_adjacency_matrix if a.startswith("sensory") else w.adjacency_matrix
        sign = matrix[int(a.split("_")[1]), int(b.split("_")[1])]
        assert polarity == ("excitatory" if sign > 0 else "inhibitory")
    inner = w.get_graph(include_sensory_neurons=False)
    assert inner.number_of_nodes() == w.units
    assert inner.number_of_edges() == w.synapse_count


def test_graph_matches_ncps():
    pytest.importorskip("networkx")
    ours, ref = _pair("AutoNCP", (12, 3), {"seed": 4})
    ours.build(3)
    ref.build(3)
    a, b = ours.get_graph(), ref.get_graph()
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    assert sorted(a.edges(data="polarity")) == sorted(b.edges(data="polarity"))


@pytest.mark.parametrize("make", ROUND_TRIP)
def test_draw_graph(make):
    pytest.importorskip("networkx")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = make().for_input(3)
    fig, ax = plt.subplots()
    try:
        handles = w.draw_graph(draw_labels=True, ax=ax, synapse_colors="gray")
        labels = [h.get_label() for h in handles]
        assert "Sensory neurons" in labels and "Motor neurons" in labels
        handles = w.draw_graph(layout="circular", neuron_colors={"motor": "red"})
        assert handles[-1].get_facecolor()[:3] == (1.0, 0.0, 0.0)
        with pytest.raises(ValueError, match="draw_graph: unknown layout 'nope'"):
            w.draw_graph(layout="nope")
    finally:
        plt.close(fig)


def test_repr():
    assert repr(NCP(4, 3, 2, 2, 2, 1, 2)) == (
        "NCP(units=9, output_dim=2, input_dim=None, inter=4, command=3, motor=2, "
        "synapses=0, sensory_synapses=0)"
    )
    assert repr(FullyConnected(2).build(1)).startswith(
        "FullyConnected(units=2, output_dim=2, input_dim=1"
    )


class Ring(Wiring):
    """A user wiring: neuron i feeds neuron i + 1, and every input feeds neuron 0."""

    def __init__(self, units, sign=1):
        super().__init__(units)
        self.sign = sign
        self.set_output_dim(1)
        for i in range(units):
            self.add_synapse(i, (i + 1) % units, sign)

    def _build_sensory(self):
        for src in range(self.input_dim):
            self.add_sensory_synapse(src, 0, self.sign)

    def _init_args(self):
        return {"units": self.units, "sign": self.sign}


def test_user_subclass_config_and_for_input():
    w = Ring(5, sign=-1).build(2)
    w2 = wiring_from_config(json.loads(json.dumps(w.get_config())))
    assert type(w2) is Ring
    _same_matrices(w2, w)
    w3 = w.for_input(4)
    assert type(w3) is Ring and w3.sensory_synapse_count == 4 and w.sensory_synapse_count == 2
