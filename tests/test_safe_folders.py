"""Nothing lost: folders are claimed by one writer, `--overwrite` replaces only what is ours,
outputs never land on inputs, a kill at any step of the swap leaves a complete folder, and
`evaluate` never changes a run's recorded results."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from liquidnets.io.atomic import FolderError, Kind, claim, distinct, dumps, write_json

THING = Kind("thing", "thing.json", frozenset({"thing.json", "data.txt"}),
             lambda meta: meta.get("format") == "thing")  # fmt: skip


def make_thing(path: Path, text: str, *, overwrite=False) -> None:
    with claim(path, THING, overwrite=overwrite) as tmp:
        (tmp / "thing.json").write_text(json.dumps({"format": "thing"}))
        (tmp / "data.txt").write_text(text)


def test_a_second_writer_fails_at_once_and_the_first_one_lands(tmp_path):
    target = tmp_path / "t"
    with claim(target, THING) as tmp:
        with pytest.raises(FolderError, match=f"being written by another .*pid {os.getpid()}"):
            make_thing(target, "second")
        (tmp / "thing.json").write_text(json.dumps({"format": "thing"}))
    assert (target / "thing.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no lock or temporary left


def test_overwrite_replaces_only_a_folder_of_the_same_kind_holding_only_its_files(tmp_path):
    make_thing(tmp_path / "t", "one")
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_thing(tmp_path / "t", "two")
    make_thing(tmp_path / "t", "two", overwrite=True)
    assert (tmp_path / "t" / "data.txt").read_text() == "two"

    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "important.txt").write_text("keep me")
    with pytest.raises(FolderError, match="not a liquidnets thing"):
        make_thing(decoy, "x", overwrite=True)
    (tmp_path / "t" / "notes.txt").write_text("mine")
    with pytest.raises(FolderError, match=r"holds 'notes\.txt'"):
        make_thing(tmp_path / "t", "three", overwrite=True)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(FolderError, match="not a folder"):
        make_thing(tmp_path / "file", "x", overwrite=True)
    assert (decoy / "important.txt").read_text() == "keep me"
    assert (tmp_path / "t" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "file").read_text() == "a file"


def test_an_output_on_an_input_is_refused(tmp_path):
    data = tmp_path / "in.csv"
    with pytest.raises(FolderError, match=r"--out .*in\.csv is --data"):
        distinct({"--out": data}, {"--data": data})
    with pytest.raises(FolderError, match="lies inside the run folder"):
        distinct({"--out": tmp_path / "run" / "x.csv"}, {"the run folder": tmp_path / "run"})
    distinct({"--out": tmp_path / "out.csv"}, {"--data": data, "x": None})  # fine


def test_json_is_strict():
    text = dumps({"a": float("nan"), "b": [np.float32(1.5), float("inf")], "c": np.arange(2)})
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [0, 1]}
    assert "NaN" not in text and "Infinity" not in text


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from liquidnets.io import atomic

    where, step = Path(sys.argv[1]), sys.argv[2]
    kind = atomic.Kind("thing", "thing.json", frozenset({"thing.json", "data.txt"}),
                       lambda meta: meta.get("format") == "thing")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if step == "aside":  # the portable swap, killed between its two renames
        atomic._exchange = lambda a, b: False
        real = os.replace
        def replace(a, b):
            real(a, b)
            die()
        atomic.os.replace = replace
    elif step == "exchanged":  # the atomic swap done, the old folder not yet removed
        real = atomic._exchange
        def exchange(a, b):
            assert real(a, b)
            die()
        atomic._exchange = exchange
    with atomic.claim(where, kind, overwrite=True) as tmp:
        (tmp / "thing.json").write_text(json.dumps({"format": "thing"}))
        (tmp / "data.txt").write_text("new")
        if step == "building":
            die()
    """
)


@pytest.mark.parametrize("step", ["building", "aside", "exchanged"])
def test_a_kill_at_any_step_of_the_swap_leaves_a_complete_folder(tmp_path, step):
    target = tmp_path / "t"
    make_thing(target, "old")
    done = subprocess.run([sys.executable, "-c", KILLER, str(target), step], check=False)
    assert done.returncode == -9
    if step == "aside":
        assert not target.exists()  # between the renames: the old one sits aside, and ...
    else:
        assert (target / "data.txt").read_text() == ("old" if step == "building" else "new")
    make_thing(target, "next", overwrite=True)  # ... the next claim puts it back and cleans up
    assert (target / "data.txt").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


# -- the commands ------------------------------------------------------------------------------
click = pytest.importorskip("click")
pytest.importorskip("lightning")


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "d.csv"
    t = np.arange(160.0)
    noise = 0.1 * np.random.default_rng(0).normal(size=t.size)
    pd.DataFrame({"t": t, "y": np.sin(t / 5) + noise}).to_csv(path, index=False)
    return path


def cli(*args):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def train(csv, out, *extra):
    return cli("train", "--data", csv, "--time", "t", "--target", "y", "--max-epochs", 2,
               "--no-baselines", "--out", out, *extra)  # fmt: skip


@pytest.fixture(scope="module")
def run(csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    result = train(csv, out)
    assert result.exit_code == 0, result.output
    return out


def test_train_refuses_a_folder_being_written_and_one_that_is_not_a_run(csv, run, tmp_path):
    from liquidnets.tasks.run import RUN

    with claim(tmp_path / "busy", RUN):
        result = train(csv, tmp_path / "busy")
    assert result.exit_code == 1 and "being written by another" in result.output
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "important.txt").write_text("keep")
    result = train(csv, decoy, "--overwrite")
    assert result.exit_code == 1 and "not a liquidnets run" in result.output
    assert (decoy / "important.txt").read_text() == "keep"
    result = train(csv, csv, "--overwrite")
    assert result.exit_code == 1 and "is --data" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_outputs_never_replace_inputs(csv, run, tmp_path):
    before = csv.read_bytes()
    result = cli("predict", run, "--data", csv, "--out", csv, "--overwrite")
    assert result.exit_code == 1 and "is --data" in result.output
    result = cli("stream", run, "--data", csv, "--out", tmp_path / "s.csv", "--snapshot", run,
                 "--overwrite")  # fmt: skip
    assert result.exit_code == 1 and "--snapshot" in result.output and "run folder" in result.output
    for command in (
        ["predict", run, "--data", csv, "--out", tmp_path],
        ["stream", run, "--data", csv, "--out", tmp_path],
        ["export", run, "--format", "numpy", "--out", tmp_path],
    ):
        result = cli(*command)
        assert result.exit_code == 1 and "is a folder" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert csv.read_bytes() == before and (run / "config.json").is_file()
    result = cli("export", run, "--format", "onnx", "--out", tmp_path / "x.npz")
    assert result.exit_code == 1 and "named *.onnx" in result.output
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"not an export")
    result = cli("export", run, "--out", mine, "--overwrite")
    assert result.exit_code == 1 and "is not a liquidnets export" in result.output
    assert mine.read_bytes() == b"not an export"
    from liquidnets import CfC
    from liquidnets.deploy import export

    export(CfC(3, 4), tmp_path / "m.npz")
    export(CfC(3, 4), tmp_path / "m.npz", overwrite=True)  # an export: replaced


def test_evaluate_writes_a_new_folder_and_keeps_the_recorded_results(csv, run, tmp_path):
    recorded = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    other = tmp_path / "other.csv"
    frame = pd.read_csv(csv)
    frame["y"] *= 10
    frame.to_csv(other, index=False)
    result = cli("evaluate", run, "--data", other)
    assert result.exit_code == 0, result.output
    (folder,) = (run / "evaluations").iterdir()
    assert f"results in: {folder}" in result.output
    assert json.loads((folder / "evaluation.json").read_text())["data"] == str(other.resolve())
    assert (folder / "metrics.md").is_file() and (folder / "plots").is_dir()
    assert all(p.read_bytes() == b for p, b in recorded.items())  # the run's own: untouched
    out = tmp_path / "eval"
    assert cli("evaluate", run, "--data", other, "--out", out).exit_code == 0
    again = cli("evaluate", run, "--data", other, "--out", out)
    assert again.exit_code == 1 and "exists" in again.output
    assert cli("evaluate", run, "--data", other, "--out", out, "--overwrite").exit_code == 0
    mine = cli("evaluate", run, "--data", other, "--out", run / "models", "--overwrite")
    assert mine.exit_code == 1 and "inside the run folder" in mine.output


def test_a_diverged_training_fails_and_writes_no_run(csv, tmp_path):
    result = train(csv, tmp_path / "nan", "--model", "ltc", "--lr", "1e30", "--max-epochs", 1)
    assert result.exit_code == 1, result.output
    assert "training diverged" in result.output and "--lr" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_non_finite_weights_are_neither_saved_nor_loaded(run, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from liquidnets.io import BundleError, load_bundle, save_bundle

    with pytest.raises(BundleError, match="not finite"):
        save_bundle(tmp_path / "m", {"w": torch.tensor([1.0, float("nan")])}, {}, {})
    model = tmp_path / "cfc"
    save_bundle(model, *load_bundle(run / "models" / "cfc"))
    weights = load_file(model / "model.safetensors")
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, model / "model.safetensors")
    with pytest.raises(BundleError, match=f"weight {name} holds NaN"):
        load_bundle(model)


def test_metrics_count_a_nan_forecast_as_a_failure(tmp_path):
    from liquidnets.tasks.metrics import classification_metrics, forecast_metrics, format_table

    m = forecast_metrics([1.0, 2.0], [float("nan"), 2.0])
    assert all(np.isnan(v) for v in m.values())
    assert np.isnan(classification_metrics([0, 1], [[np.nan, 1.0], [0.2, 0.8]])["accuracy"])
    rows = [{"model": "nan", **m}, {"model": "naive", **forecast_metrics([1.0, 2.0], [1.5, 1.5])}]
    table = format_table(rows, ["mae", "smape"])
    assert "| nan | n/a | n/a |" in table and "| naive | 0.5000* | 34.29* |" in table
    text = write_json(tmp_path / "m.json", m).read_text()
    assert json.loads(text)["mae"] is None and "NaN" not in text


# -- every probe of the issue: one line, a non-zero exit ---------------------------------------
def _hand_edit(run: Path, where: Path, file: str, edit) -> Path:
    import shutil

    shutil.copytree(run, where)
    data = json.loads((where / file).read_text())
    edit(data)
    (where / file).write_text(json.dumps(data))
    return where


TRAIN_PROBES = {
    "--max-epochs -2": (["--max-epochs", "-2"], "--max-epochs must be a whole number >= 1"),
    "--devices 0": (["--devices", "0"], "--devices must be a whole number >= 1"),
    "--devices 99": (["--devices", "99", "--accelerator", "cpu"], "this machine has"),
    "--lr 0": (["--lr", "0"], "--lr must be a finite number > 0"),
    "--patience -1": (["--patience", "-1"], "--patience must be a whole number >= 0"),
    "--units 0": (["--units", "0"], "units must be a positive integer"),
    "--horizon 0": (["--horizon", "0"], "must be positive"),
}


@pytest.mark.parametrize("probe", list(TRAIN_PROBES))
def test_bad_training_options_are_one_line_before_anything_starts(csv, tmp_path, probe):
    extra, message = TRAIN_PROBES[probe]
    result = train(csv, tmp_path / "r", *extra)
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_that_is_not_there_is_one_line(csv, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = train(csv, tmp_path / "r", "--accelerator", "gpu")
    assert result.exit_code == 1 and "no GPU" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(range(128, 256)), "is not a TOML text file"),
        (b"lookback = 8.7\n", "lookback = 8.7: expected a whole number"),
        (b"baselines = 'no'\n", "expected true or false"),
        (b"lookback = [", "is not valid TOML"),
    ],
)
def test_bad_toml_is_one_line(csv, tmp_path, content, message):
    config = tmp_path / "run.toml"
    config.write_bytes(content)
    result = train(csv, tmp_path / "r", "--config", config)
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_duplicate_column_names_are_refused(tmp_path):
    data = tmp_path / "dup.csv"
    data.write_text("t,y,y\n1,2,3\n2,3,4\n")
    result = cli("train", "--data", data, "--target", "y", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "column 'y' appears twice in the header (columns 2 and 3)" in result.output


def test_damaged_run_folders_are_one_line_and_nothing_outside_is_read(csv, run, tmp_path):
    other = tmp_path / "other"  # another run, that a hand-edited path would reach
    probes = {
        run / "models" / "cfc": "is a saved model, not a run folder",
        _hand_edit(run, tmp_path / "nokey", "config.json", lambda c: c.pop("missing")):
            "the key 'missing' is missing",
        _hand_edit(run, tmp_path / "type", "config.json", lambda c: c.update(val="x")):
            "val should be int or float; got 'x'",
        _hand_edit(run, other, "config.json", lambda c: None): None,
        _hand_edit(run, tmp_path / "escape", "config.json",
                   lambda c: c.update(models=["../../other/models/cfc"],
                                      model="../../other/models/cfc")):
            "is not a folder name under models/",
        _hand_edit(run, tmp_path / "scaler", "models/cfc/metadata.json",
                   lambda m: m.pop("scaler")): "metadata.json has no 'scaler'",
    }  # fmt: skip
    for folder, message in probes.items():
        if message is None:
            continue
        for command in (
            ["evaluate", folder, "--data", csv],
            ["predict", folder, "--data", csv, "--out", tmp_path / "p.csv"],
            ["stream", folder, "--data", csv, "--out", tmp_path / "s.csv"],
        ):
            result = cli(*command)
            assert result.exit_code == 1 and message in result.output, (command, result.output)
            assert len(result.output.strip().splitlines()) == 1


# -- crash-safe long work ----------------------------------------------------------------------
KILL_TRAINING = textwrap.dedent(
    """
    import os, signal, sys
    import lightning
    from lightning.pytorch.callbacks import Callback

    class Kill(Callback):  # SIGKILL at the end of epoch KILL_AT, as a crash would
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch >= int(os.environ["KILL_AT"]):
                os.kill(os.getpid(), signal.SIGKILL)

    original, started = lightning.Trainer.__init__, []
    def with_kill(self, *args, **kwargs):  # in the KILL_TRAINING-th training of the run
        started.append(1)
        if len(started) == int(os.environ.get("KILL_TRAINING", "1")):
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), Kill()]
        original(self, *args, **kwargs)
    lightning.Trainer.__init__ = with_kill
    from liquidnets.cli import main
    main(sys.argv[1:])
    """
)


def kill_training(args, at: int, tmp: Path, training: int = 1):
    env = {**os.environ, "KILL_AT": str(at), "TMPDIR": str(tmp), "KILL_TRAINING": str(training)}
    return subprocess.run(
        [sys.executable, "-c", KILL_TRAINING, *map(str, args)], env=env, check=False,
        capture_output=True, text=True,
    )  # fmt: skip


def test_a_killed_training_leaves_nothing_outside_and_clean_removes_the_rest(csv, tmp_path):
    runs, system_tmp = tmp_path / "runs", tmp_path / "tmp"
    system_tmp.mkdir()
    args = ["train", "--data", csv, "--time", "t", "--target", "y", "--max-epochs", 5,
            "--out", runs / "x"]  # fmt: skip
    done = kill_training(args, 1, system_tmp)
    assert done.returncode == -9, done.stderr
    lock, left = sorted(runs.iterdir())  # the run's lock, its temporary folder with ...
    assert lock.name == ".x.lock" and left.name.startswith(".x.tmp-")
    assert list(left.rglob("last.ckpt"))  # ... the last epoch's whole state inside
    assert list(system_tmp.iterdir()) == []  # nothing in the system's temporary directory
    fake = system_tmp / "liquidnets-deadbeef"  # a training whose process is gone
    fake.mkdir()
    (fake / "pid").write_text("999999999")
    os.environ["TMPDIR"], old = str(system_tmp), os.environ.get("TMPDIR")
    try:
        import tempfile

        tempfile.tempdir = None  # read TMPDIR again
        result = cli("clean", runs)
    finally:
        os.environ.pop("TMPDIR") if old is None else os.environ.update(TMPDIR=old)
        tempfile.tempdir = None
    assert result.exit_code == 0, result.output
    assert "3 left-over(s) removed" in result.output
    assert list(runs.iterdir()) == [] and list(system_tmp.iterdir()) == []


@pytest.mark.parametrize("training, epoch", [(1, 2), (2, 2)])
def test_a_killed_training_resumes_to_the_result_of_one_never_stopped(
    csv, tmp_path, training, epoch
):
    runs = tmp_path / "runs"
    common = ["--data", csv, "--time", "t", "--target", "y", "--max-epochs", 4,
              "--patience", 10]  # fmt: skip
    whole = cli("train", *common, "--out", runs / "whole")  # never stopped
    assert whole.exit_code == 0, whole.output
    # killed after the second epoch of the main model, or the third of the next one (lstm)
    done = kill_training(["train", *common, "--out", runs / "x"], epoch, tmp_path, training)
    assert done.returncode == -9, done.stderr
    assert not (runs / "x").exists()
    (last,) = runs.glob(f".x.tmp-*/.scratch/training-0{training}/last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] == epoch - 1  # the epoch before
    resumed = cli("train", "--resume", runs / "x")
    assert resumed.exit_code == 0, resumed.output
    a = json.loads((runs / "whole" / "metrics.json").read_text())["rows"]
    b = json.loads((runs / "x" / "metrics.json").read_text())["rows"]
    assert [r["model"] for r in a] == [r["model"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert rb["mae"] == pytest.approx(ra["mae"], rel=1e-5), (ra, rb)
    history = json.loads((runs / "x" / "models" / "cfc" / "metadata.json").read_text())["history"]
    assert len(history["val_loss"]) == 4  # every epoch, the ones before the kill too
    assert sorted(p.name for p in runs.iterdir()) == ["whole", "x"]  # nothing left over
    again = cli("train", "--resume", runs / "x")
    assert again.exit_code == 1 and "no unfinished run" in again.output


KILL_STREAM = textwrap.dedent(
    """
    import os, signal, sys
    from liquidnets.deploy.replay import replay
    from liquidnets.deploy.stream import StreamPredictor

    original, taken = StreamPredictor.update_many, []
    def update_many(self, *args, **kwargs):  # SIGKILL after KILL_AFTER readings of the replay
        out = original(self, *args, **kwargs)
        if self.config.policy != "off":
            taken.append(1)
            if len(taken) >= int(os.environ["KILL_AFTER"]):
                os.kill(os.getpid(), signal.SIGKILL)
        return out
    StreamPredictor.update_many = update_many
    run, data, out, snap = sys.argv[1:]
    replay(run, data, out, adapt="every:20", max_ms=1e9, snapshot=snap, snapshot_every=50)
    """
)


def test_a_killed_stream_continues_from_its_last_snapshot(csv, run, tmp_path):
    from liquidnets.deploy.replay import replay

    snap, whole = tmp_path / "snap", tmp_path / "whole.csv"
    # no time budget per update (max_ms): updates cut short by the clock differ between runs
    replay(run, csv, whole, adapt="every:20", max_ms=1e9)
    args = [run, csv, tmp_path / "a.csv", snap]
    env = {**os.environ, "KILL_AFTER": "120"}
    done = subprocess.run([sys.executable, "-c", KILL_STREAM, *map(str, args)], env=env,
                          check=False, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == -9, done.stderr
    first = pd.read_csv(tmp_path / "a.csv")
    assert len(first) == 100  # written with the last snapshot: 20 readings of work lost
    result = cli("stream", snap, "--data", csv, "--out", tmp_path / "b.csv", "--snapshot", snap)
    assert result.exit_code == 0, result.output
    both = pd.concat([first, pd.read_csv(tmp_path / "b.csv")], ignore_index=True)
    expected = pd.read_csv(whole)
    assert list(both.columns) == list(expected.columns) and len(both) == len(expected)
    numbers = expected.select_dtypes("number").columns
    np.testing.assert_allclose(both[numbers], expected[numbers], rtol=1e-5, atol=1e-6)
    assert (both["update"].fillna("") == expected["update"].fillna("")).all()


def test_what_is_written_is_readable_as_the_umask_allows(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        make_thing(tmp_path / "t", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o755
