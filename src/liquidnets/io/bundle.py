"""A model bundle: `model.safetensors` + `config.json` + `metadata.json` in one folder.

    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp() + "/model"
    >>> _ = save_bundle(folder, {"w": torch.ones(2, 3)}, {"model": "cfc"}, {"scaler": None})
    >>> weights, config, metadata = load_bundle(folder)
    >>> weights["w"].shape, config["model"]
    (torch.Size([2, 3]), 'cfc')

The folder is written beside its final place and renamed into it, so a crash never leaves half
a model, and an existing folder is replaced only when asked (`overwrite=True`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from liquidnets.io.atomic import Kind, claim, dumps

FORMAT = "liquidnets-model"
VERSION = 1  # bump when the layout changes; load_bundle reads this version and older ones
FILES = ("model.safetensors", "config.json", "metadata.json")
MODEL = Kind("model", FILES[1], frozenset(FILES), lambda config: config.get("format") == FORMAT)


class BundleError(ValueError):
    """A folder that is not a loadable model bundle (one line, names the file)."""


def hand_edits(load):
    """Decorate a `load(cls, path)` classmethod's function: a key missing from the bundle's
    JSON, or a value of the wrong kind (what hand edits make), becomes one `BundleError` line
    naming the folder instead of a traceback."""

    @functools.wraps(load)
    def checked(cls, path, *args, **kwargs):
        try:
            return load(cls, path, *args, **kwargs)
        except KeyError as exc:
            raise BundleError(
                f"{path}: config.json or metadata.json has no {exc.args[0]!r}; was it edited "
                "by hand? Save the model again"
            ) from None
        except (TypeError, AttributeError, IndexError) as exc:
            raise BundleError(
                f"{path}: config.json or metadata.json holds a value of the wrong kind "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None

    return checked


def _library_version() -> str:
    from liquidnets import __version__

    return __version__


def save_bundle(
    path: str | Path,
    weights: dict[str, torch.Tensor],
    config: dict,
    metadata: dict,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the bundle folder `path`.

    Args:
        path: the folder to create.
        weights: name -> tensor (a `state_dict`); saved with safetensors.
        config: JSON-able description that rebuilds the network; the format, its version, the
            library version and every weight's shape are added to it.
        metadata: JSON-able data the model needs around it (scalers, column names, ...).
        overwrite: replace an existing model folder (and nothing else: see
            `liquidnets.io.atomic.claim`); otherwise that is a `FileExistsError`.

    Returns:
        The folder's path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise BundleError(f"{path}: weight {bad[0]} is not finite (NaN or infinite); not saved")
    config = {
        **config,
        "format": FORMAT,
        "format_version": VERSION,
        "liquidnets_version": _library_version(),
        "shapes": {k: list(v.shape) for k, v in weights.items()},
    }
    with claim(path, MODEL, overwrite=overwrite) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        save_file(tensors, str(tmp / FILES[0]))
        (tmp / FILES[1]).write_text(dumps(config, sort_keys=True) + "\n")
        (tmp / FILES[2]).write_text(dumps(metadata, sort_keys=True) + "\n")
    return path


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{file}: expected a JSON object")
    return data


def load_bundle(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read a bundle written by `save_bundle`: `(weights, config, metadata)`.

    Raises `BundleError` when a file is missing, the format or its version is not one this
    library reads, or a tensor's shape differs from the one the config records.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no such model folder")
    for name in FILES:
        if not (path / name).is_file():
            raise BundleError(f"{path}: {name} is missing; is this a liquidnets model folder?")
    config = _read_json(path / FILES[1])
    metadata = _read_json(path / FILES[2])
    if config.get("format") != FORMAT:
        raise BundleError(f"{path / FILES[1]}: not a {FORMAT} config")
    version = config.get("format_version")
    if not isinstance(version, int) or version > VERSION:
        raise BundleError(
            f"{path}: format version {version} is newer than this liquidnets reads ({VERSION}); "
            "upgrade liquidnets"
        )
    try:
        weights = load_file(str(path / FILES[0]))
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{path / FILES[0]}: unreadable ({exc})") from None
    shapes = config.get("shapes", {})
    if set(shapes) != set(weights):
        raise BundleError(f"{path}: the weights and config.json list different tensors")
    for name, tensor in weights.items():
        if list(tensor.shape) != shapes[name]:
            raise BundleError(
                f"{path}: tensor {name} has shape {list(tensor.shape)}, config.json says "
                f"{shapes[name]}"
            )
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise BundleError(
                f"{path / FILES[0]}: weight {name} holds NaN or infinite values; the model it "
                "came from diverged in training, so it is not loaded"
            )
    return weights, config, metadata
