"""The model bundle: safetensors weights, JSON config and metadata, checked on load."""

import json

import pytest
import torch

from liquidnets.io import BundleError, load_bundle, save_bundle

pytest.importorskip("safetensors")


def weights():
    torch.manual_seed(0)
    return {"a.weight": torch.randn(3, 4), "a.bias": torch.randn(3)}


def test_round_trip_keeps_every_tensor_and_the_json(tmp_path):
    w = weights()
    save_bundle(tmp_path / "m", w, {"model": "cfc", "units": 8}, {"columns": ["x", "y"]})
    loaded, config, meta = load_bundle(tmp_path / "m")
    assert set(loaded) == set(w)
    for k in w:
        assert torch.equal(loaded[k], w[k])
    assert config["model"] == "cfc" and config["units"] == 8
    assert config["shapes"] == {"a.weight": [3, 4], "a.bias": [3]}
    assert meta == {"columns": ["x", "y"]}


def test_an_existing_folder_is_kept_unless_overwrite(tmp_path):
    save_bundle(tmp_path / "m", weights(), {"v": 1}, {})
    with pytest.raises(FileExistsError, match="overwrite"):
        save_bundle(tmp_path / "m", weights(), {"v": 2}, {})
    assert load_bundle(tmp_path / "m")[1]["v"] == 1
    save_bundle(tmp_path / "m", weights(), {"v": 2}, {}, overwrite=True)
    assert load_bundle(tmp_path / "m")[1]["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left


def test_shapes_are_checked_against_the_config(tmp_path):
    save_bundle(tmp_path / "m", weights(), {}, {})
    cfg = tmp_path / "m" / "config.json"
    data = json.loads(cfg.read_text())
    data["shapes"]["a.weight"] = [4, 3]
    cfg.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"a\.weight has shape \[3, 4\]"):
        load_bundle(tmp_path / "m")


def test_a_newer_format_and_missing_files_are_refused(tmp_path):
    save_bundle(tmp_path / "m", weights(), {}, {})
    cfg = tmp_path / "m" / "config.json"
    data = json.loads(cfg.read_text())
    cfg.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(BundleError, match="newer"):
        load_bundle(tmp_path / "m")
    (tmp_path / "m" / "metadata.json").unlink()
    with pytest.raises(BundleError, match=r"metadata\.json is missing"):
        load_bundle(tmp_path / "m")
    with pytest.raises(BundleError, match="no such model folder"):
        load_bundle(tmp_path / "nowhere")


def test_a_pickle_in_place_of_the_weights_is_not_loaded(tmp_path):
    # A torch.save pickle renamed to model.safetensors must fail to parse, never execute.
    save_bundle(tmp_path / "m", weights(), {}, {})
    torch.save(weights(), tmp_path / "m" / "model.safetensors")
    with pytest.raises(BundleError, match="unreadable"):
        load_bundle(tmp_path / "m")


def test_write_json_replaces_atomically(tmp_path):
    from liquidnets.io.atomic import write_json

    path = tmp_path / "out" / "report.json"
    assert write_json(path, {"a": 1}) == path
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temporary left
