"""Wiring graphs: which neuron of a liquid layer feeds which, and with what sign.

A wiring is two integer matrices, indexed `[source, destination]`, with entries -1 (inhibitory
synapse), 0 (no synapse) or +1 (excitatory synapse):

- `adjacency_matrix`, `(units, units)`: synapses between the layer's own neurons;
- `sensory_adjacency_matrix`, `(input_dim, units)`: synapses from the inputs (the "sensory
  neurons"); it exists once `build(input_dim)` has been called.

Neurons `0 .. output_dim - 1` are the motor neurons: their states are the layer's output.

The classes here are a drop-in for `ncps.wirings` (ncps 1.0.1): the same arguments, seed and
input size give the same matrices, entry for entry, so a model trained with ncps keeps its
structure. Only numpy is needed; `get_graph` imports networkx and `draw_graph` matplotlib when
they are called.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["NCP", "AutoNCP", "FullyConnected", "Random", "Wiring", "wiring_from_config"]

# Signs are drawn as ncps draws them, one draw per synapse: a uniform index into (-1, +1, +1)
# for FullyConnected and Random (two thirds excitatory) and into (-1, +1) for NCP. The number and
# kind of draws must not change, or every later synapse of the same seed would move.
_SIGNS_MOSTLY_EXCITATORY = (-1, 1, 1)
_SIGNS_BALANCED = [-1, 1]

# ncps's colours, plus one for command neurons (ncps draws them in the inter colour)
_NEURON_COLORS = {
    "sensory": "tab:olive",
    "inter": "tab:blue",
    "command": "tab:cyan",
    "motor": "tab:orange",
}
_SYNAPSE_COLORS = {"excitatory": "tab:green", "inhibitory": "tab:red"}


def _draw_sign(rng: np.random.Generator) -> int:
    # rng.integers(0, 3) is exactly the draw rng.choice makes on a 3-list, at a fifth of the cost
    return _SIGNS_MOSTLY_EXCITATORY[rng.integers(0, 3)]


def _as_int(owner: str, name: str, value: Any, minimum: int) -> int:
    try:
        value = operator.index(value)  # ints and numpy ints; floats such as 4.0 are refused
    except TypeError:
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{owner}: {name} ({value}) must be at least {minimum}")
    return value


def _resolve_seed(seed: int | None) -> int:
    # A seed of None becomes a concrete one, so that get_config() can rebuild the same wiring.
    # It stays below 2**32, the range the legacy RandomState (NCP) accepts.
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**32)
    return operator.index(seed)


def _check_matrix(owner: str, name: str, matrix: Any, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(matrix)
    if array.shape != shape or not np.isin(array, (-1, 0, 1)).all():
        raise ValueError(f"{owner}: {name} must be of shape {shape} with entries -1, 0 or +1")
    return array.astype(np.int32)


class Wiring:
    """A wiring filled in by hand, and the base class of all wirings.

    Starts with no synapses. Add them with `add_synapse`; call `build(input_dim)` once the
    input size is known, then add the input synapses with `add_sensory_synapse`.

    Args:
        units: the number of neurons (the state size of the layer).

    A new wiring is a small subclass: draw `adjacency_matrix` in `__init__`, the sensory
    synapses in `_build_sensory()` (called once by `build`), and return the constructor
    arguments from `_init_args()` so that `get_config`, `from_config` and `for_input` work.

    Example:
        >>> w = Wiring(3)
        >>> w.set_output_dim(1)
        >>> w.add_synapse(2, 0, -1)
        >>> w = w.build(input_dim=2)
        >>> w.add_sensory_synapse(1, 2, +1)
        >>> w.synapse_count, w.sensory_synapse_count, w.get_type_of_neuron(0)
        (1, 1, 'motor')
        >>> int(Wiring.from_config(w.get_config()).adjacency_matrix[2, 0])
        -1
    """

    def __init__(self, units: int) -> None:
        self.units = _as_int(type(self).__name__, "units", units, 1)
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self._sensory_built = False

    # ----------------------------------------------------------------------------- structure

    @property
    def num_layers(self) -> int:
        """The number of neuron layers (1 except for NCP, which has inter, command, motor)."""
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """The ids of the neurons in layer `layer_id` (`0 <= layer_id < num_layers`)."""
        self._check_layer(layer_id)
        return list(range(self.units))

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """`"motor"` for the first `output_dim` neurons, `"inter"` for the others."""
        self._check_index("get_type_of_neuron", "neuron_id", neuron_id, self.units, "units")
        return "motor" if self.output_dim is not None and neuron_id < self.output_dim else "inter"

    def is_built(self) -> bool:
        """Whether the input size is known (and the sensory synapses exist)."""
        return self.input_dim is not None

    @property
    def synapse_count(self) -> int:
        """The number of synapses between the layer's own neurons."""
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """The number of synapses from the inputs (0 before `build`)."""
        if self.sensory_adjacency_matrix is None:
            return 0
        return int(np.abs(self.sensory_adjacency_matrix).sum())

    def erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        """A copy of `adjacency_matrix`: the signs that initialise the reversal potentials.

        `shape` and `dtype` are accepted for Keras-style callers and ignored, as in ncps.
        """
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        """A copy of `sensory_adjacency_matrix` (after `build`)."""
        if self.sensory_adjacency_matrix is None:
            raise ValueError(f"{self._name}: no sensory synapses before build(input_dim)")
        return np.copy(self.sensory_adjacency_matrix)

    # ------------------------------------------------------------------------------ building

    def set_input_dim(self, input_dim: int) -> None:
        """Set the input size and clear the sensory synapses (`build` draws them again)."""
        self.input_dim = _as_int(self._name, "input_dim", input_dim, 1)
        self.sensory_adjacency_matrix = np.zeros((self.input_dim, self.units), dtype=np.int32)
        self._sensory_built = False

    def set_output_dim(self, output_dim: int) -> None:
        """Set the number of motor neurons, `1 <= output_dim <= units`."""
        output_dim = _as_int(self._name, "output_dim", output_dim, 1)
        if output_dim > self.units:
            raise ValueError(
                f"{self._name}: output_dim ({output_dim}) must be at most units ({self.units})"
            )
        self.output_dim = output_dim

    def build(self, input_dim: int) -> Wiring:
        """Fix the input size and draw the sensory synapses.

        Building again with the same `input_dim` does nothing (ncps would draw the sensory
        synapses a second time); another `input_dim` is an error: see `for_input`.

        Args:
            input_dim: the number of input features.

        Returns:
            The wiring itself.
        """
        input_dim = _as_int(self._name, "input_dim", input_dim, 1)
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(
                f"Conflicting input dimensions: this {self._name} is built for input_dim "
                f"{self.input_dim}, not {input_dim}; use wiring.for_input({input_dim}) to get "
                "a copy built for that size"
            )
        if self.input_dim is None:
            self.set_input_dim(input_dim)
        if not self._sensory_built:
            self._build_sensory()
            self._sensory_built = True
        return self

    def for_input(self, input_dim: int) -> Wiring:
        """This wiring built for `input_dim`, for sharing one wiring between layers.

        An unbuilt wiring is built in place and returned, as is one already built for
        `input_dim`. One built for another size is left alone: the result is then a new,
        independent wiring, equal to a fresh one of the same arguments built for `input_dim`.
        (For NCP the internal synapses differ too: they are drawn after the sensory ones.)

        Args:
            input_dim: the number of input features.

        Returns:
            `self`, or a new wiring of the same class and arguments.

        Example:
            >>> w = FullyConnected(4)
            >>> w.for_input(3) is w
            True
            >>> w.for_input(5) is w, w.for_input(5).input_dim
            (False, 5)
        """
        input_dim = _as_int(self._name, "input_dim", input_dim, 1)
        if self.input_dim is None or self.input_dim == input_dim:
            return self.build(input_dim)
        args = self._init_args()
        if args is None:
            raise ValueError(
                f"for_input: this {self._name} is built for input_dim {self.input_dim} and its "
                f"sensory synapses were set by hand, so they cannot be regenerated for input_dim "
                f"{input_dim}; build a separate wiring for that size"
            )
        return type(self)(**args).build(input_dim)

    def _build_sensory(self) -> None:
        """Draw the sensory synapses; called once by `build`. Nothing here: added by hand."""

    def _init_args(self) -> dict[str, Any] | None:
        """The constructor arguments that regenerate this wiring; None if built by hand."""
        return None

    # ------------------------------------------------------------------------------ synapses

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Set the synapse from neuron `src` to neuron `dest` to `polarity` (-1 or +1)."""
        self._check_index("add_synapse", "src", src, self.units, "units")
        self._check_index("add_synapse", "dest", dest, self.units, "units")
        self._check_polarity("add_synapse", polarity)
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Set the synapse from input `src` to neuron `dest` to `polarity` (after `build`)."""
        if self.input_dim is None or self.sensory_adjacency_matrix is None:
            raise ValueError(
                "add_sensory_synapse: the input size is not known yet; call build(input_dim) first"
            )
        self._check_index("add_sensory_synapse", "src", src, self.input_dim, "input_dim")
        self._check_index("add_sensory_synapse", "dest", dest, self.units, "units")
        self._check_polarity("add_sensory_synapse", polarity)
        self.sensory_adjacency_matrix[src, dest] = polarity

    # -------------------------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable description: `wiring_from_config` rebuilds the wiring from it.

        Generated wirings store their constructor arguments and `input_dim`; a hand-built
        `Wiring` stores its matrices. `"class_name"` names the class.
        """
        args = self._init_args()
        if args is None:
            sensory = self.sensory_adjacency_matrix
            args = {
                "units": self.units,
                "adjacency_matrix": self.adjacency_matrix.tolist(),
                "sensory_adjacency_matrix": None if sensory is None else sensory.tolist(),
                "output_dim": self.output_dim,
            }
        return {"class_name": type(self).__name__, **args, "input_dim": self.input_dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Wiring:
        """The wiring described by `config` (from `get_config`, ours or ncps 1.0.1's).

        A config with matrices always gives a plain `Wiring`, as in ncps.
        """
        config = dict(config)
        name = config.pop("class_name", None)
        if name is not None and name != cls.__name__:
            if cls is Wiring:
                return wiring_from_config({"class_name": name, **config})
            raise ValueError(
                f"{cls.__name__}.from_config: the config is for {name}; "
                "use wiring_from_config(config)"
            )
        if "adjacency_matrix" in config:
            return _wiring_from_matrices(config)
        input_dim = config.pop("input_dim", None)
        wiring = cls(**config)
        return wiring if input_dim is None else wiring.build(input_dim)

    # --------------------------------------------------------------------------------- graph

    def get_graph(self, include_sensory_neurons: bool = True) -> Any:
        """The wiring as a `networkx.DiGraph` (after `build`).

        Nodes are `neuron_i` and, if `include_sensory_neurons`, `sensory_i`, each with a
        `neuron_type` attribute; edges carry `polarity`: `"excitatory"` or `"inhibitory"`.
        """
        if self.input_dim is None or self.sensory_adjacency_matrix is None:
            raise ValueError(
                f"get_graph: this {self._name} is not built yet (its input size is unknown); "
                "call build(input_dim), or run the model on an input once"
            )
        import networkx as nx

        graph = nx.DiGraph()
        for i in range(self.units):
            graph.add_node(f"neuron_{i}", neuron_type=self.get_type_of_neuron(i))
        blocks = [("neuron", self.adjacency_matrix)]
        if include_sensory_neurons:
            for i in range(self.input_dim):
                graph.add_node(f"sensory_{i}", neuron_type="sensory")
            blocks.insert(0, ("sensory", self.sensory_adjacency_matrix))
        for prefix, matrix in blocks:
            for src, dest in np.argwhere(matrix != 0):
                polarity = "excitatory" if matrix[src, dest] > 0 else "inhibitory"
                graph.add_edge(f"{prefix}_{src}", f"neuron_{dest}", polarity=polarity)
        return graph

    def draw_graph(
        self,
        layout: str = "shell",
        neuron_colors: dict[str, str] | None = None,
        synapse_colors: str | dict[str, str] | None = None,
        draw_labels: bool = False,
        ax: Any = None,
    ) -> list[Any]:
        """Draw the wiring with matplotlib (on `ax`, or the current axes).

        Args:
            layout: a networkx layout: "shell" (default), "circular", "random", "spring",
                "spectral", "spiral" or "kamada" (needs scipy).
            neuron_colors: colours by neuron type, over the defaults; None for the defaults.
            synapse_colors: one colour for all synapses, or colours for "excitatory" and
                "inhibitory"; None for green and red.
            draw_labels: whether to write the node names.
            ax: the matplotlib axes to draw on; None for the current one.

        Returns:
            Legend handles, one per neuron type: `plt.legend(handles=...)`.
        """
        import matplotlib.patches as mpatches
        import networkx as nx

        layouts: dict[str, Callable[..., Any]] = {
            "shell": nx.shell_layout,
            "circular": nx.circular_layout,
            "random": nx.random_layout,
            "spring": nx.spring_layout,
            "spectral": nx.spectral_layout,
            "spiral": nx.spiral_layout,
            "kamada": nx.kamada_kawai_layout,
        }
        if layout not in layouts:
            raise ValueError(
                f"draw_graph: unknown layout {layout!r}; expected one of {sorted(layouts)}"
            )
        if isinstance(synapse_colors, str):
            synapse_colors = dict.fromkeys(_SYNAPSE_COLORS, synapse_colors)
        synapse_colors = {**_SYNAPSE_COLORS, **(synapse_colors or {})}
        neuron_colors = {**_NEURON_COLORS, **(neuron_colors or {})}

        graph = self.get_graph()
        pos = layouts[layout](graph)
        types = dict(graph.nodes(data="neuron_type"))
        # Types in the colour order (inputs to outputs), then any a subclass adds.
        present = [t for t in neuron_colors if t in types.values()]
        present += sorted(set(types.values()) - set(present))
        for kind in present:
            nodes = [node for node, t in types.items() if t == kind]
            color = neuron_colors.get(kind, "tab:blue")
            nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=color, ax=ax)
        if draw_labels:
            nx.draw_networkx_labels(graph, pos, ax=ax)
        for polarity in _SYNAPSE_COLORS:
            edges = [(a, b) for a, b, p in graph.edges(data="polarity") if p == polarity]
            if edges:
                color = synapse_colors[polarity]
                nx.draw_networkx_edges(graph, pos, edgelist=edges, edge_color=color, ax=ax)
        return [
            mpatches.Patch(
                color=neuron_colors.get(t, "tab:blue"), label=f"{t.capitalize()} neurons"
            )
            for t in present
        ]

    # --------------------------------------------------------------------------------- misc

    def __repr__(self) -> str:
        extra = self._extra_repr()
        return (
            f"{self._name}(units={self.units}, output_dim={self.output_dim}, "
            f"input_dim={self.input_dim}{', ' + extra if extra else ''}, "
            f"synapses={self.synapse_count}, sensory_synapses={self.sensory_synapse_count})"
        )

    def _extra_repr(self) -> str:
        return ""

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check_layer(self, layer_id: int) -> None:
        if not 0 <= layer_id < self.num_layers:
            raise ValueError(
                f"{self._name}: layer_id ({layer_id}) must be in [0, {self.num_layers})"
            )

    def _check_index(self, where: str, name: str, value: int, size: int, size_name: str) -> None:
        if not 0 <= value < size:
            raise ValueError(f"{where}: {name} ({value}) must be in [0, {size_name}={size})")

    def _check_polarity(self, where: str, polarity: int) -> None:
        if polarity not in (-1, 1):
            raise ValueError(
                f"{where}: polarity ({polarity}) must be -1 (inhibitory) or +1 (excitatory)"
            )


def _wiring_from_matrices(config: dict[str, Any]) -> Wiring:
    wiring = Wiring(config["units"])
    shape = (wiring.units, wiring.units)
    wiring.adjacency_matrix = _check_matrix(
        "Wiring.from_config", "adjacency_matrix", config["adjacency_matrix"], shape
    )
    if config.get("output_dim") is not None:
        wiring.set_output_dim(config["output_dim"])
    if config.get("input_dim") is not None:
        wiring.build(config["input_dim"])
        sensory = config.get("sensory_adjacency_matrix")
        if sensory is not None:
            shape = (wiring.input_dim, wiring.units)
            wiring.sensory_adjacency_matrix = _check_matrix(
                "Wiring.from_config", "sensory_adjacency_matrix", sensory, shape
            )
    return wiring


class FullyConnected(Wiring):
    """Every neuron feeds every neuron, and every input feeds every neuron.

    Each synapse is excitatory with probability 2/3 and inhibitory otherwise.

    Args:
        units: the number of neurons.
        output_dim: the number of motor neurons (the first ones); default None = `units`.
        erev_init_seed: seed of the numpy `default_rng` drawing the signs (default 1111);
            None draws a fresh seed, which `get_config` records.
        self_connections: whether each neuron also feeds itself (default True).

    Example:
        >>> w = FullyConnected(4, output_dim=2).build(3)
        >>> w.synapse_count, w.sensory_synapse_count, w.output_dim
        (16, 12, 2)
        >>> FullyConnected(4, self_connections=False).adjacency_matrix.diagonal()
        array([0, 0, 0, 0], dtype=int32)
    """

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        erev_init_seed: int | None = 1111,
        self_connections: bool = True,
    ) -> None:
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        self.self_connections = bool(self_connections)
        self.erev_init_seed = _resolve_seed(erev_init_seed)
        # One generator for both matrices: build() continues the stream where __init__ stops.
        self._rng = np.random.default_rng(self.erev_init_seed)
        for src in range(self.units):
            for dest in range(self.units):
                if src != dest or self.self_connections:
                    self.add_synapse(src, dest, _draw_sign(self._rng))

    def _build_sensory(self) -> None:
        assert self.input_dim is not None
        for src in range(self.input_dim):
            for dest in range(self.units):
                self.add_sensory_synapse(src, dest, _draw_sign(self._rng))

    def _init_args(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "erev_init_seed": self.erev_init_seed,
            "self_connections": self.self_connections,
        }


class Random(Wiring):
    """A random subset of all possible synapses, with random signs.

    `round(units**2 * (1 - sparsity_level))` internal synapses are drawn without repetition,
    and likewise `round(input_dim * units * (1 - sparsity_level))` sensory ones. Signs are
    excitatory with probability 2/3. (ncps draws each sensory sign twice and keeps the second
    draw; this is kept, so that the matrices stay equal to ncps's.)

    Args:
        units: the number of neurons.
        output_dim: the number of motor neurons (the first ones); default None = `units`.
        sparsity_level: the fraction of synapses left out, `0 <= sparsity_level < 1`
            (default 0.0).
        random_seed: seed of the numpy `default_rng` (default 1111); None draws a fresh seed,
            which `get_config` records.

    Example:
        >>> w = Random(10, output_dim=2, sparsity_level=0.75).build(4)
        >>> w.synapse_count, w.sensory_synapse_count
        (25, 10)
    """

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        sparsity_level: float = 0.0,
        random_seed: int | None = 1111,
    ) -> None:
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        sparsity_level = float(sparsity_level)
        if not 0.0 <= sparsity_level < 1.0:
            raise ValueError(f"Random: sparsity_level ({sparsity_level}) must be in [0, 1)")
        self.sparsity_level = sparsity_level
        self.random_seed = _resolve_seed(random_seed)
        self._rng = np.random.default_rng(self.random_seed)
        self._draw_synapses(self.units, self.add_synapse, signs_per_synapse=1)

    def _draw_synapses(
        self, sources: int, add: Callable[[int, int, int], None], signs_per_synapse: int
    ) -> None:
        # The count is computed in ncps's float order and rounded half to even, as ncps does.
        count = int(np.round(sources * self.units * (1 - self.sparsity_level)))
        # Choosing flat indices draws exactly what choosing rows of the (src, dest) list does.
        for flat in self._rng.choice(sources * self.units, size=count, replace=False):
            src, dest = divmod(int(flat), self.units)
            for _ in range(signs_per_synapse):
                add(src, dest, _draw_sign(self._rng))

    def _build_sensory(self) -> None:
        assert self.input_dim is not None
        self._draw_synapses(self.input_dim, self.add_sensory_synapse, signs_per_synapse=2)

    def _init_args(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "sparsity_level": self.sparsity_level,
            "random_seed": self.random_seed,
        }


class NCP(Wiring):
    """A Neural Circuit Policy wiring (Lechner et al., Nature Machine Intelligence, 2020).

    Four layers, as in the nervous system of C. elegans: sensory (the inputs) -> inter ->
    command (with recurrent synapses among themselves) -> motor (the outputs). Neuron ids are
    motor `0 .. motor-1`, then command, then inter, so the output is the leading slice of the
    state. Each input feeds `sensory_fanout` random inter neurons, each inter neuron feeds
    `inter_fanout` command neurons, `recurrent_command_synapses` random command-to-command
    synapses are added, and each motor neuron is fed by `motor_fanin` command neurons; neurons
    left unconnected by this get a few synapses of their own. Signs are +/-1 with equal odds.

    All synapses are drawn in `build`, so the internal ones depend on `input_dim` too.

    Args:
        inter_neurons: neurons in the inter layer (layer 0), at least 1.
        command_neurons: neurons in the command layer (layer 1), at least 1.
        motor_neurons: neurons in the motor layer (layer 2) = output size, at least 1.
        sensory_fanout: inter neurons fed by each input, `1 .. inter_neurons`.
        inter_fanout: command neurons fed by each inter neuron, `1 .. command_neurons`.
        recurrent_command_synapses: random command-to-command synapses drawn, at least 0.
        motor_fanin: command neurons feeding each motor neuron, `1 .. command_neurons`.
        seed: seed of the numpy `RandomState` (default 22222); None draws a fresh seed, which
            `get_config` records.

    Example:
        >>> w = NCP(6, 4, 2, 3, 2, 3, 2).build(input_dim=5)  # inter, command, motor, fanouts
        >>> w.units, w.output_dim, w.get_neurons_of_layer(1)
        (12, 2, [2, 3, 4, 5])
        >>> [w.get_type_of_neuron(i) for i in (0, 2, 6)]
        ['motor', 'command', 'inter']
    """

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int | None = 22222,
    ) -> None:
        if any(isinstance(n, list) for n in (inter_neurons, command_neurons, motor_neurons)):
            raise ValueError(
                "NCP: neuron counts must be integers; an ncps 1.0.1 NCP config (neuron id lists, "
                "seed None) cannot reproduce its wiring, rebuild it from the NCP(...) arguments"
            )
        inter = _as_int("NCP", "inter_neurons", inter_neurons, 1)
        command = _as_int("NCP", "command_neurons", command_neurons, 1)
        motor = _as_int("NCP", "motor_neurons", motor_neurons, 1)
        self._sensory_fanout = _as_int("NCP", "sensory_fanout", sensory_fanout, 1)
        self._inter_fanout = _as_int("NCP", "inter_fanout", inter_fanout, 1)
        self._recurrent_command_synapses = _as_int(
            "NCP", "recurrent_command_synapses", recurrent_command_synapses, 0
        )
        self._motor_fanin = _as_int("NCP", "motor_fanin", motor_fanin, 1)
        for name, value, layer, size in (
            ("sensory_fanout", self._sensory_fanout, "inter", inter),
            ("inter_fanout", self._inter_fanout, "command", command),
            ("motor_fanin", self._motor_fanin, "command", command),
        ):
            if value > size:
                raise ValueError(
                    f"NCP: {name} ({value}) must be at most the number of {layer} neurons ({size})"
                )
        super().__init__(inter + command + motor)
        self.set_output_dim(motor)
        self.seed = _resolve_seed(seed)
        # The legacy RandomState, not default_rng: it is what ncps's NCP draws from.
        self._rng = np.random.RandomState(self.seed)
        self._motor_neurons = list(range(motor))
        self._command_neurons = list(range(motor, motor + command))
        self._inter_neurons = list(range(motor + command, self.units))

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """Layer 0: inter neurons, 1: command neurons, 2: motor neurons."""
        self._check_layer(layer_id)
        layers = (self._inter_neurons, self._command_neurons, self._motor_neurons)
        return list(layers[layer_id])

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """`"motor"`, `"command"` or `"inter"`."""
        self._check_index("get_type_of_neuron", "neuron_id", neuron_id, self.units, "units")
        if neuron_id < len(self._motor_neurons):
            return "motor"
        return "command" if neuron_id < self._inter_neurons[0] else "inter"

    def _build_sensory(self) -> None:
        assert self.input_dim is not None
        sensory = list(range(self.input_dim))
        inter, command, motor = self._inter_neurons, self._command_neurons, self._motor_neurons
        # The order of these four steps is the order of ncps's random draws.
        self._fan(sensory, inter, self._sensory_fanout, len(sensory), self.add_sensory_synapse)
        self._fan(inter, command, self._inter_fanout, len(command), self.add_synapse)
        for _ in range(self._recurrent_command_synapses):
            src = self._rng.choice(command)
            dest = self._rng.choice(command)
            self.add_synapse(src, dest, self._rng.choice(_SIGNS_BALANCED))
        # Here motor neurons do the choosing: each picks the command neurons that feed it.
        self._fan(
            motor, command, self._motor_fanin, len(motor), lambda m, c, s: self.add_synapse(c, m, s)
        )

    def _fan(
        self,
        choosers: list[int],
        pool: list[int],
        k: int,
        cap: int,
        connect: Callable[[int, int, int], None],
    ) -> None:
        """Each chooser connects to `k` distinct members of `pool`; members of `pool` that no
        chooser picked then connect to `len(choosers) * k / len(pool)` choosers (at least 1, at
        most `cap`), so that no neuron is left out. `connect(chooser, member, sign)`."""
        reached = set()
        for chooser in choosers:
            for member in self._rng.choice(pool, size=k, replace=False):
                reached.add(int(member))
                connect(chooser, member, self._rng.choice(_SIGNS_BALANCED))
        # `cap` is ncps's bound; for inter -> command it is the command count, not the inter one.
        back = int(np.clip(int(len(choosers) * k / len(pool)), 1, cap))
        for member in (m for m in pool if m not in reached):
            for chooser in self._rng.choice(choosers, size=back, replace=False):
                connect(chooser, member, self._rng.choice(_SIGNS_BALANCED))

    def _init_args(self) -> dict[str, Any]:
        return {
            "inter_neurons": len(self._inter_neurons),
            "command_neurons": len(self._command_neurons),
            "motor_neurons": len(self._motor_neurons),
            "sensory_fanout": self._sensory_fanout,
            "inter_fanout": self._inter_fanout,
            "recurrent_command_synapses": self._recurrent_command_synapses,
            "motor_fanin": self._motor_fanin,
            "seed": self.seed,
        }

    def _extra_repr(self) -> str:
        sizes = (len(self._inter_neurons), len(self._command_neurons), len(self._motor_neurons))
        return "inter={}, command={}, motor={}".format(*sizes)


class AutoNCP(NCP):
    """An NCP sized from the number of units, the output size and a sparsity level.

    Of the `units - output_size` non-motor neurons, 40% (at least one) are command neurons
    and the rest inter neurons. With `density = 1 - sparsity_level`, the fanouts are
    `inter * density` (sensory), `command * density` (inter and motor fan-in) and
    `2 * command * density` recurrent command synapses, each at least 1.

    Args:
        units: the total number of neurons.
        output_size: the number of motor neurons; it must be less than `units - 2`, so that at
            least 3 neurons are left for the inter and command layers (about `0.3 * units` is a
            good choice).
        sparsity_level: from 0.0 (dense) to 1.0 (one synapse per fanout); default 0.5. ncps
            accepts 0.1 to 1.0; 0.0 to 0.1 works as well and is accepted here.
        seed: seed of the numpy `RandomState` (default 22222).

    Example:
        >>> w = AutoNCP(16, output_size=4).build(3)
        >>> [len(w.get_neurons_of_layer(i)) for i in range(w.num_layers)]
        [8, 4, 4]
        >>> w.get_config()["sparsity_level"]
        0.5
    """

    def __init__(
        self,
        units: int,
        output_size: int,
        sparsity_level: float = 0.5,
        seed: int | None = 22222,
    ) -> None:
        units = _as_int("AutoNCP", "units", units, 1)
        output_size = _as_int("AutoNCP", "output_size", output_size, 1)
        if output_size >= units - 2:
            raise ValueError(
                f"AutoNCP: output_size ({output_size}) must be less than units - 2 "
                f"({units} - 2 = {units - 2}), leaving at least 3 neurons for the inter and "
                "command layers"
            )
        sparsity_level = float(sparsity_level)
        if not 0.0 <= sparsity_level <= 1.0:
            raise ValueError(
                f"AutoNCP: sparsity_level ({sparsity_level}) must be between 0.0 and 1.0"
            )
        self._output_size = output_size
        self._sparsity_level = sparsity_level
        density = 1.0 - sparsity_level
        hidden = units - output_size
        command = max(int(0.4 * hidden), 1)
        inter = hidden - command
        # The products are written in ncps's order: float rounding could otherwise differ.
        super().__init__(
            inter,
            command,
            output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )

    def _init_args(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_size": self._output_size,
            "sparsity_level": self._sparsity_level,
            "seed": self.seed,
        }


# Config keys that tell ncps's configs (which have no "class_name") apart.
_KEY_TO_CLASS = {
    "adjacency_matrix": Wiring,
    "erev_init_seed": FullyConnected,
    "random_seed": Random,
    "output_size": AutoNCP,
    "inter_neurons": NCP,
}


def _find_class(name: str) -> type[Wiring]:
    # The classes of this module first, then user subclasses (of any depth) by their name.
    for cls in (Wiring, FullyConnected, Random, NCP, AutoNCP):
        if cls.__name__ == name:
            return cls
    queue: list[type[Wiring]] = [Wiring]
    while queue:
        cls = queue.pop(0)
        if cls.__name__ == name:
            return cls
        queue.extend(cls.__subclasses__())
    raise ValueError(f"wiring_from_config: unknown wiring class {name!r}")


def wiring_from_config(config: dict[str, Any]) -> Wiring:
    """The wiring described by a `get_config()` dict, of the class named by `"class_name"`.

    Configs from ncps 1.0.1 (no `"class_name"`) are recognised by their keys.

    Example:
        >>> w = AutoNCP(10, 3, seed=1).build(2)
        >>> w2 = wiring_from_config(w.get_config())
        >>> type(w2).__name__, bool((w2.adjacency_matrix == w.adjacency_matrix).all())
        ('AutoNCP', True)
    """
    name = config.get("class_name")
    if name is None:
        found = [cls for key, cls in _KEY_TO_CLASS.items() if key in config]
        if not found:
            raise ValueError(
                "wiring_from_config: the config has no 'class_name' and matches no known wiring"
            )
        cls = found[0]
    else:
        cls = _find_class(name)
    return cls.from_config(config)
