"""Whole-series classification, the split by series, and a given split column (--split-column)
for every task."""

import json

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from liquidnets.data import (  # noqa: E402
    DataError,
    load_series,
    pad_series,
    split_by_column,
    split_by_series,
)

FAST = {"max_epochs": 25, "patience": 25, "progress_bar": False, "lr": 1e-2}


def shapes(n=60, seed=0):
    """Series of 20-60 readings whose class is their frequency (random phase, noise): a
    window of a few readings cannot tell them apart, a whole series can."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        c = k % 3
        length = int(rng.integers(20, 61))
        t = np.arange(length)
        x = np.sin(t * (0.3 + 0.6 * c) + rng.uniform(0, 6)) + 0.3 * rng.normal(size=length)
        frames.append(pd.DataFrame({"sid": f"s{k:02d}", "t": t, "x": x, "kind": "abc"[c]}))
    return pd.concat(frames, ignore_index=True)


def rows(n=200, split=(140, 30, 30)):
    """One series with a split column: train, then val, then test rows."""
    t = np.arange(n)
    y = np.sin(t / 6) + 0.01 * t
    part = np.repeat(["train", "val", "test"], split)
    return pd.DataFrame({"t": t, "y": y, "part": part})


# -- the split column in the data layer ---------------------------------------------------------
def test_a_bad_split_value_names_file_column_and_row(tmp_path):
    frame = rows()
    frame.loc[57, "part"] = "validation"
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_series(path, targets="y", time="t", split="part")
    assert str(err.value) == (
        "data.csv: split column 'part', row 57 (line 59): 'validation'; each row must say "
        "train, val or test"
    )
    frame.loc[57, "part"] = None
    with pytest.raises(DataError, match="row 57: a missing value"):
        load_series(frame, targets="y", time="t", split="part")


def test_the_split_column_is_never_an_input():
    s = load_series(rows(), targets="y", time="t", split="part")
    assert s.columns == ["y"] and s.split_column == "part"
    with pytest.raises(DataError, match="the time, split columns must be different"):
        load_series(rows(), targets="y", time="part", split="part")


def test_rows_split_train_then_val_then_test():
    s = load_series(rows(), targets="y", time="t", split=" part".strip())
    assert split_by_column(s) == {
        "train": [slice(0, 140)], "val": [slice(140, 170)], "test": [slice(170, 200)],
    }  # fmt: skip
    no_val = rows(split=(170, 0, 30))
    s = load_series(no_val, targets="y", time="t", split="part")
    parts = split_by_column(s, val=0.2)  # validation: the last 20% of the training rows
    assert parts["train"] == [slice(0, 136)] and parts["val"] == [slice(136, 170)]


def test_interleaved_rows_are_refused_with_the_row():
    frame = rows()
    frame.loc[180, "part"] = "train"
    s = load_series(frame, targets="y", time="t", split="part")
    with pytest.raises(DataError) as err:
        split_by_column(s)
    assert str(err.value) == (
        "<frame>: split column 'part', row 180: 'train' after 'test' at row 179; the rows of "
        "each series must go train, then val, then test in time"
    )
    nothing = rows(split=(0, 100, 100))
    with pytest.raises(DataError, match="marks no row train"):
        split_by_column(load_series(nothing, targets="y", time="t", split="part"))


# -- the split by whole series ----------------------------------------------------------------
def _series(frame, **kw):
    return load_series(frame, targets=[], time="t", id="sid", label="kind", **kw)


def test_the_split_by_series_is_stratified_and_does_not_depend_on_the_order():
    frame = shapes(n=60)
    s = _series(frame)
    parts = split_by_series(s, val=0.15, test=0.2)
    labels = [str(v[0]) for v in s.labels]
    for name, per_class in (("test", 4), ("val", 3), ("train", 13)):
        counts = {c: sum(labels[i] == c for i in parts[name]) for c in "abc"}
        assert counts == dict.fromkeys("abc", per_class), (name, counts)
    assert sorted(i for index in parts.values() for i in index) == list(range(60))
    ids = {name: {s.ids[i] for i in index} for name, index in parts.items()}
    shuffled = pd.concat([g for _, g in frame.groupby("sid")][::-1], ignore_index=True)
    s2 = _series(shuffled)
    again = split_by_series(s2, val=0.15, test=0.2)
    assert {name: {s2.ids[i] for i in index} for name, index in again.items()} == ids
    other_seed = split_by_series(s, val=0.15, test=0.2, seed=1)
    assert {s.ids[i] for i in other_seed["test"]} != ids["test"]
    # another validation draw: the same test series, other validation series, still stratified
    other_val = split_by_series(s, val=0.15, test=0.2, val_seed=7)
    assert other_val["test"] == parts["test"] and set(other_val["val"]) != set(parts["val"])
    assert sorted(other_val["val"] + other_val["train"]) == sorted(parts["val"] + parts["train"])
    assert [sum(labels[i] == c for i in other_val["val"]) for c in "abc"] == [3, 3, 3]


def test_a_split_column_assigns_whole_series_and_val_is_carved_from_train():
    frame = shapes(n=60)
    number = frame["sid"].str[1:].astype(int)
    frame["part"] = np.where(number >= 45, "test", "train")
    s = _series(frame, split="part")
    parts = split_by_series(s, val=0.2)
    assert {s.ids[i] for i in parts["test"]} == {f"s{k}" for k in range(45, 60)}
    labels = [str(v[0]) for v in s.labels]
    assert [sum(labels[i] == c for i in parts["val"]) for c in "abc"] == [3, 3, 3]  # 20% of 15
    frame.loc[frame.index[(frame["sid"] == "s03") & (frame["t"] == 5)], "part"] = "test"
    with pytest.raises(DataError) as err:
        split_by_series(_series(frame, split="part"))
    row = int(frame.index[(frame["sid"] == "s03") & (frame["t"] == 5)][0])
    assert str(err.value) == (
        f"<frame>: split column 'part', row {row} (series 's03'): 'test' where the series' "
        "first row says 'train'; a series is split whole, so all its rows must carry the "
        "same split"
    )


def test_too_few_series_to_validate_on_is_one_line():
    frame = shapes(n=3)
    with pytest.raises(DataError, match="leave no validation series"):
        split_by_series(_series(frame))


def test_padded_series_hold_patches_and_a_mask():
    s = _series(shapes(n=6))
    lengths = [len(v) for v in s.values]
    x, dt, mask = pad_series(s, downsample=4)
    assert x.shape == (6, -(-max(lengths) // 4), 4) and mask.sum(1).tolist() == [
        -(-n // 4) for n in lengths
    ]
    assert np.allclose(dt[mask], [min(1.0, (n - 4 * j) / 4) for n in lengths
                                  for j in range(-(-n // 4))])  # fmt: skip
    assert np.array_equal(x[0, 0], s.values[0][:4, 0])  # four readings side by side


# -- the classifier of whole series ---------------------------------------------------------
lightning = pytest.importorskip("lightning")

from liquidnets.tasks import AnomalyDetector, Classifier, Forecaster  # noqa: E402


def test_whole_series_of_different_lengths_are_learnt_above_the_prior(tmp_path):
    frame = shapes(n=90)
    clf = Classifier("cfc", per="series", ensemble=1, train=FAST)
    clf.fit(frame, label="kind", time="t", id="sid")
    naive = Classifier("naive", per="series").fit(frame, label="kind", time="t", id="sid")
    ours, prior = clf.backtest(frame), naive.backtest(frame)
    assert len(ours["truth"]) == 15 and set(ours["ids"]) <= set(frame["sid"])  # series, not windows
    assert ours["metrics"]["accuracy"] >= prior["metrics"]["accuracy"] + 0.3
    proba = clf.predict_proba(frame)
    assert list(proba["id"]) == [f"s{k:02d}" for k in range(90)]  # one row per series
    assert np.allclose(proba[clf.classes].sum(axis=1), 1.0, atol=1e-5)
    clf.save(tmp_path / "clf")
    again = Classifier.load(tmp_path / "clf")
    assert again.whole and again.downsample == clf.downsample == 4  # 60 readings in 16 steps
    assert np.allclose(again.predict_proba(frame)[clf.classes], proba[clf.classes], atol=1e-5)


def test_an_ensemble_averages_its_members_and_reloads(tmp_path):
    frame = shapes(n=30)
    clf = Classifier("gru", per="series", ensemble=2, budget=2000, train={**FAST, "max_epochs": 2})
    clf.fit(frame, label="kind", time="t", id="sid")
    assert len(clf.net.members) == 2 and len(clf.history["members"]) == 2
    clf.save(tmp_path / "ens")
    again = Classifier.load(tmp_path / "ens").predict_proba(frame)
    assert np.allclose(again[clf.classes], clf.predict_proba(frame)[clf.classes], atol=1e-5)


def test_cross_fit_members_validate_on_their_own_series(tmp_path, monkeypatch):
    from liquidnets.tasks import classify

    seen = []  # the labels each member trains and validates on, and how many series
    real = classify._fit

    def spy(net, train, valid, config, run_dir=None):
        seen.append((train[-1].tolist(), valid[-1].tolist(), train[0].shape[0], valid[0].shape[0]))
        return real(net, train, valid, config, run_dir=run_dir)

    monkeypatch.setattr(classify, "_fit", spy)
    frame = shapes(n=60)
    fast = {**FAST, "max_epochs": 1}
    for cross_fit in (True, False):
        seen.clear()
        clf = Classifier("cfc", per="series", units=8, stem=4, ensemble=3, cross_fit=cross_fit,
                         train=fast)  # fmt: skip
        clf.fit(frame, label="kind", time="t", id="sid")
        clf.save(tmp_path / str(cross_fit))
        assert Classifier.load(tmp_path / str(cross_fit)).cross_fit is cross_fit
        assert len(seen) == 3 and len({n_train + n_val for *_, n_train, n_val in seen}) == 1
        parts = [clf._series_parts(_series(frame), k) for k in range(3)]
        assert all(p["test"] == parts[0]["test"] for p in parts)  # the test series stay
        vals = {tuple(p["val"]) for p in parts}
        assert len(vals) == (3 if cross_fit else 1)
        labels = [sorted(val_labels) for _, val_labels, *_ in seen]
        assert labels[0] == labels[1] == labels[2]  # stratified: the same classes, other series
    assert Classifier("cfc", per="series").cross_fit and not Classifier("cfc").cross_fit


def test_the_stem_convolves_the_rows_inside_the_patches_as_one_series():
    import torch

    from liquidnets.tasks.models import PatchConv

    stem = PatchConv(channels=2, rows=5, filters=4, kernel=3).eval()
    full = torch.randn(3, 20, 2)  # (batch, rows, channels)
    patched = full.reshape(3, 4, 5 * 2)  # 4 steps of 5 rows side by side (pad_series' layout)
    z = stem.convs(full.transpose(1, 2))  # (batch, filters, rows): the series at full resolution
    expected = z.reshape(3, 4, 4, 5).amax(-1).transpose(1, 2)  # each filter's max per patch
    assert torch.allclose(stem(patched), expected, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        PatchConv(channels=1, rows=2, kernel=4)


def test_a_dilated_stem_sees_longer_shapes_with_the_same_weights():
    import torch

    from liquidnets.tasks.models import PatchConv

    def reach(dilation: int) -> int:
        """How far from a row a change of input still moves that row's features."""
        stem = PatchConv(channels=1, rows=1, filters=3, kernel=3, dilation=dilation).eval()
        x = torch.randn(1, 41, 1)
        base = stem(x)[0, 20]
        far = 0
        for d in range(1, 20):
            y = x.clone()
            y[0, 20 + d] += 1.0
            if not torch.allclose(stem(y)[0, 20], base):
                far = d
        return far

    # two convolutions of width 3: one row each side, then one (d=1) or two (d=2) more
    assert reach(1) == 2 and reach(2) == 3 and reach(3) == 4
    plain, dilated = PatchConv(1, 1, 4, dilation=1), PatchConv(1, 1, 4, dilation=2)
    assert sum(p.numel() for p in plain.parameters()) == sum(
        p.numel() for p in dilated.parameters()
    )
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="dilation"):
            PatchConv(1, 1, 4, dilation=bad)


def test_a_per_series_stem_is_dilated_and_models_saved_before_keep_theirs(tmp_path):
    frame = shapes(n=30)
    assert Classifier("cfc", per="series").dilation == 2
    with pytest.raises(ValueError, match="dilation"):
        Classifier("cfc", per="series", dilation=0)
    clf = Classifier("cfc", per="series", ensemble=1, stem=4, units=8, dilation=1,
                     train={**FAST, "max_epochs": 2})  # fmt: skip
    clf.fit(frame, label="kind", time="t", id="sid")
    clf.save(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    config = json.loads(path.read_text())
    assert config.pop("dilation") == 1
    path.write_text(json.dumps(config))  # as a model saved before the option existed
    loaded = Classifier.load(tmp_path / "old")
    assert loaded.dilation == 1 and loaded.net.stem.convs[3].dilation == (1,)
    assert np.allclose(
        loaded.predict_proba(frame)[clf.classes], clf.predict_proba(frame)[clf.classes], atol=1e-5
    )


def test_a_convolutional_stem_is_learnt_saved_and_given_to_the_baselines(tmp_path):
    from liquidnets.tasks.models import PatchConv, Stemmed, parameter_count

    frame = shapes(n=90)
    clf = Classifier("cfc", per="series", ensemble=1, stem=8, units=16, train=FAST)
    clf.fit(frame, label="kind", time="t", id="sid")
    assert isinstance(clf.net, Stemmed) and clf.net.stem.rows == clf.downsample == 4
    naive = Classifier("naive", per="series").fit(frame, label="kind", time="t", id="sid")
    acc = clf.backtest(frame)["metrics"]["accuracy"]
    assert acc >= naive.backtest(frame)["metrics"]["accuracy"] + 0.3
    clf.save(tmp_path / "stem")
    again = Classifier.load(tmp_path / "stem")
    assert again.stem == 8 and again.config()["stem"] == 8
    assert again.dilation == 2 and again.net.stem.convs[3].dilation == (2,)
    assert np.allclose(
        again.predict_proba(frame)[clf.classes], clf.predict_proba(frame)[clf.classes], atol=1e-5
    )
    # an LSTM gets the same stem; its budget, less the stem's, goes to the recurrent layer
    budget = parameter_count(clf.net)
    lstm = Classifier("lstm", per="series", ensemble=1, stem=8, budget=budget, train=FAST)
    lstm.classes, lstm.downsample, lstm.spec = clf.classes, clf.downsample, clf.spec
    net = lstm._build(1)
    assert isinstance(net.stem, PatchConv) and net.stem.filters == 8
    assert abs(parameter_count(net) - budget) < 0.1 * budget
    with pytest.raises(ValueError, match="needs per='series'"):
        Classifier("cfc", per="window", stem=8)


def test_export_refuses_what_a_step_model_cannot_carry(tmp_path):
    from liquidnets.deploy.export import export

    frame = shapes(n=30)
    clf = Classifier("cfc", per="series", units=8, train={**FAST, "max_epochs": 1})
    clf.fit(frame, label="kind", time="t", id="sid")
    with pytest.raises(ValueError, match="pools its outputs over time, reads patches of rows"):
        export(clf, tmp_path / "clf.npz")


def test_an_old_per_series_model_loads_with_its_windowed_recipe(tmp_path):
    frame = shapes(n=12)
    old = Classifier("cfc", per="series", lookback=8, units=8, pool="last", ensemble=1, stem=None,
                     backbone_layers=None, train={**FAST, "max_epochs": 2})  # fmt: skip
    old.whole = False  # what per="series" did before: windows split by time, averaged
    old.fit(frame, label="kind", time="t", id="sid")
    before = old.predict_proba(frame)
    old.save(tmp_path / "old")
    new_keys = ("whole_series", "max_steps", "downsample", "reduce", "pool", "backbone_layers",
                "mixed_memory", "ensemble", "stem", "cross_fit")  # fmt: skip
    for name, drop in (("config.json", new_keys), ("metadata.json", ())):
        path = tmp_path / "old" / name
        data = json.loads(path.read_text())
        for key in drop:
            data.pop(key)
        data.get("spec", {}).pop("split_column", None)
        path.write_text(json.dumps(data))
    loaded = Classifier.load(tmp_path / "old")
    assert not loaded.whole and loaded.pool == "last" and loaded.backbone_layers is None
    after = loaded.predict_proba(frame)
    assert list(after["id"]) == list(before["id"]) == [f"s{k:02d}" for k in range(12)]
    assert np.allclose(after[old.classes], before[old.classes], atol=1e-5)
    assert len(loaded.backtest(frame)["truth"]) > 12  # windows, as it was scored then


# -- the split column in every task ---------------------------------------------------------
def _split_rows(n=240, series=2):
    frames = []
    for k in range(series):
        t = np.arange(n)
        y = np.sin(t / 5 + k) + 0.002 * t
        part = np.repeat(["train", "val", "test"], [n - 80, 40, 40])
        state = np.where((t // 20) % 2 == 0, "on", "off")
        frames.append(pd.DataFrame({"sid": f"m{k}", "t": t, "y": y, "state": state,
                                    "part": part}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_forecasting_and_anomalies_split_by_the_column():
    frame = _split_rows()
    options = {"time": "t", "id": "sid", "split_column": "part"}
    f = Forecaster("naive", lookback=8, horizon=1).fit(frame, targets="y", **options)
    bt = f.backtest(frame)
    assert len(bt["times"]) == 80 and set(bt["times"]) == set(range(200, 240))
    assert len(f.backtest(frame, part="val")["times"]) == 80
    assert len(f.predict(frame.drop(columns="part"))) == 2  # predicting needs no split column
    det = AnomalyDetector("naive", lookback=8).fit(frame, targets="y", **options)
    result = det.backtest(frame)
    assert len(result["times"]) == 80 and set(result["times"]) == set(range(200, 240))
    assert len(det.score(frame.drop(columns="part"))) == 2 * (240 - 8)


def test_window_classification_splits_by_the_column():
    frame = _split_rows()
    clf = Classifier("naive", lookback=8).fit(
        frame, label="state", time="t", id="sid", split_column="part"
    )
    assert set(clf.backtest(frame)["times"]) == set(range(200, 240))


def test_whole_series_classification_honours_the_column():
    frame = shapes(n=45)
    number = frame["sid"].str[1:].astype(int)
    frame["part"] = np.where(number < 30, "train", "test")
    clf = Classifier("naive", per="series").fit(
        frame, label="kind", time="t", id="sid", split_column="part"
    )
    assert sorted(clf.backtest(frame)["ids"]) == [f"s{k}" for k in range(30, 45)]


def test_the_cli_takes_a_split_column_and_old_run_folders_still_evaluate(tmp_path):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli
    from liquidnets.tasks.run import evaluate_run

    frame = shapes(n=30)
    number = frame["sid"].str[1:].astype(int)
    frame["part"] = np.where(number < 21, "train", "test")
    data = tmp_path / "shapes.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--data", str(data), "--label", "kind", "--time", "t",
            "--id", "sid", "--per", "series", "--split-column", "part", "--max-epochs", "2",
            "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.output)["rows"]}
    assert set(rows) == {"cfc", "naive", "lstm", "gru"}
    config = json.loads((out / "config.json").read_text())
    assert config["split_column"] == "part" and config["train"]["max_epochs"] == 2
    assert not {"batch_size", "patience"} & set(config["train"])  # unset: the task's defaults
    assert (
        json.loads((out / "models" / "cfc" / "config.json").read_text())["train"]["batch_size"]
        == 16
    )  # the per-series default, not the per-window 64
    config.pop("split_column")  # a run folder written before --split-column
    (out / "config.json").write_text(json.dumps(config))
    assert len(evaluate_run(out, data)["rows"]) == 4
    frame.loc[3, "part"] = "holdout"
    frame.to_csv(data, index=False)
    bad = CliRunner().invoke(build_cli(), [*args[:-3], "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 1
    assert bad.output.strip() == (
        "Error: shapes.csv: split column 'part', row 3 (line 5): 'holdout'; each row must say "
        "train, val or test"
    )


# -- the benchmark, reduced -----------------------------------------------------------------
def test_the_classification_benchmark_runs_quick(tmp_path):
    pytest.importorskip("aeon")
    from benchmark_scripts import load

    bench = load("quality_classify")
    path = tmp_path / "quality_classify.json"
    assert bench.main(["--quick", "--threads", "1", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    (unit,) = report["sets"]
    assert unit["set"] == "UnitTest" and unit["test_series"] == 22
    assert set(unit["accuracy"]) == {"liquid", "lstm", "gru", "naive", "MiniRocket"}
    assert all(0 <= v <= 1 for v in unit["accuracy"].values())
    assert set(unit["seconds"]) == {"liquid", "lstm", "gru", "MiniRocket"}
    assert set(report["summary"]["targets"]) == {
        "mean accuracy within 3 points of MiniRocket", "above the class prior on every set",
    }  # fmt: skip
    assert "| UnitTest (20/22, 24) |" in bench.table(report)


def test_augmented_copies_shift_the_patch_borders_and_lose_nothing(tmp_path, monkeypatch):
    from liquidnets.tasks import classify

    seen = []
    real = classify._fit

    def spy(net, train, valid, config, run_dir=None):
        seen.append((train[0].shape[0], train[-1].tolist(), valid[0].shape[0]))
        return real(net, train, valid, config, run_dir=run_dir)

    monkeypatch.setattr(classify, "_fit", spy)
    frame = shapes(n=30)
    clf = Classifier("cfc", per="series", units=8, stem=4, ensemble=1, augment=2,
                     train={**FAST, "max_epochs": 1})  # fmt: skip
    clf.fit(frame, label="kind", time="t", id="sid")
    ((n_train, labels, n_val),) = seen
    assert n_val > 0
    plain = len(clf._series_parts(_series(frame))["train"])
    assert n_train == 3 * plain and labels[plain:] == [y for y in labels[:plain] for _ in (0, 1)]
    clf.save(tmp_path / "aug")
    assert Classifier.load(tmp_path / "aug").augment == 2
    series = _series(frame)
    rng = np.random.default_rng(0)
    copies = classify._crops(series, [0] * 20, rng, patch=4)
    for values in copies.values:  # the series whole, its first row repeated 0..3 times
        front = len(values) - len(series.values[0])
        assert 0 <= front < 4 and np.array_equal(values[front:], series.values[0])
    assert {len(v) for v in copies.values} > {len(series.values[0])}
