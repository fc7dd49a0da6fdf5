"""The `liquidnets` command (Click; `pip install liquidnets[cli]`): thin, over the Python API.

    liquidnets train --data readings.csv --target co2 --time time --out runs/co2
    liquidnets evaluate runs/co2 --data readings.csv
    liquidnets predict runs/co2 --data readings.csv --out forecast.csv
    liquidnets bench --quick          # the speed benchmark of liquidnets.bench
    python -m liquidnets bench --help

Every command is a few lines over `liquidnets.tasks.run` and `liquidnets.bench`. Options of
train/evaluate/predict can come from a TOML file (`--config run.toml`, keys named like the
options, `time_unit` or `time-unit`); flags given on the command line win.

Without Click installed, `main()` exits with a one-line message saying how to install it.
"""

from __future__ import annotations

import importlib.util
import sys

MISSING_CLICK = (
    "liquidnets: the command line needs Click; install it with: pip install 'liquidnets[cli]'"
)


def build_cli():
    """The `liquidnets` Click group (Click is imported here, so this module imports without it)."""
    import click

    from liquidnets import bench as _bench

    h = _bench.HELP

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """Liquid neural networks (LTC, CfC, NCP wirings) in PyTorch.

        \b
        Example:
            liquidnets bench --quick
        """

    @cli.command(epilog=f"\b\nExample:\n    liquidnets bench {_bench.EXAMPLE_ARGS}")
    @click.option("--device", type=click.Choice(["cpu", "cuda"]), help=h["device"])
    @click.option("--threads", type=int, help=h["threads"])
    @click.option("--batch", type=int, help=h["batch"])
    @click.option("--inputs", type=int, help=h["inputs"])
    @click.option("--units", type=int, help=h["units"])
    @click.option("--lengths", help=h["lengths"])
    @click.option("--repeats", type=int, help=h["repeats"])
    @click.option("--target-seconds", type=float, help=h["target_seconds"])
    @click.option("--models", help=h["models"])
    @click.option("--cases", help=h["cases"])
    @click.option("--max-memory-mb", type=float, help=h["max_memory_mb"])
    @click.option("--reference", is_flag=True, default=None, help=h["reference"])
    @click.option("--no-ncps", "compare_ncps", flag_value=False, default=None, help=h["no_ncps"])
    @click.option("--quick", is_flag=True, help=h["quick"])
    @click.option("--json", "json_path", type=click.Path(dir_okay=False), help=h["json"])
    def bench(json_path: str | None, **options) -> None:
        """Time liquidnets against ncps 1.0.1 and torch's LSTM/GRU; print a table, save JSON."""
        try:
            settings = _bench.settings_from(**options)
        except ValueError as e:
            raise click.UsageError(str(e)) from e
        _bench.report(settings, json_path)

    _workflow_commands(cli, click)
    _clean_command(cli, click)
    return cli


TRAIN_KEYS = {
    "max_epochs": "max-epochs", "batch_size": "batch-size", "lr": "lr", "patience": "patience",
    "seed": "seed", "accelerator": "accelerator", "devices": "devices", "strategy": "strategy",
    "num_nodes": "num-nodes", "gradient_clip": "gradient-clip", "schedule": "schedule",
    "weight_decay": "weight-decay",
}  # fmt: skip
EXPECTED = (
    "liquidnets.data.DataError",
    "liquidnets.io.bundle.BundleError",
    "liquidnets.tasks.run.RunError",
)


def _read_config(ctx, param, value):
    """An eager --config: its TOML keys become the defaults of the other options."""
    if value is None:
        return None
    import click

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    fail = click.ClickException  # one line: "Error: --config run.toml: ..."
    try:
        with open(value, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise fail(f"--config {value}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise fail(f"--config {value} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise fail(f"--config {value} is not a TOML text file (it is not UTF-8)") from None
    params = {p.name: p for p in ctx.command.params}
    defaults = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(defaults) - set(params))
    if unknown:
        raise fail(f"--config {value}: unknown keys {', '.join(unknown)}")
    for key, v in defaults.items():
        if isinstance(v, list):  # lists in TOML for the comma-separated options
            v = defaults[key] = ",".join(map(str, v))
        problem = _toml_type(params[key], v)
        if problem:
            raise fail(f"--config {value}: {key} = {v!r}: {problem}")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _toml_type(param, value) -> str | None:
    """What is wrong with a TOML `value` for the option `param` (None: nothing). Click would
    turn 8.7 into 8 for a whole-number option, and "yes" into True for a flag."""
    import click

    if isinstance(param.type, (click.types.IntParamType, click.IntRange)):
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected a whole number"
    elif isinstance(param.type, (click.types.FloatParamType, click.FloatRange)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "expected a number"
    elif getattr(param, "is_flag", False) and not isinstance(value, bool):
        return "expected true or false"
    elif isinstance(value, (dict, bool)) and not getattr(param, "is_flag", False):
        return "expected a number or a string"
    return None


def _season(ctx, param, value):
    """--season: a positive number of steps, `auto` or `none`."""
    import click

    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise click.BadParameter(f"expected a positive number of steps, auto or none; got {value!r}")


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _run_errors(click):
    """Run a command body; the errors a user can cause become one line and exit status 1."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        from liquidnets.data import DataError
        from liquidnets.io import BundleError
        from liquidnets.tasks.run import RunError

        try:
            yield
        except (DataError, BundleError, RunError, FileExistsError, ValueError, ImportError) as e:
            raise click.ClickException(str(e).splitlines()[0] if str(e) else repr(e)) from None

    return guard


def _workflow_commands(cli, click) -> None:
    guard = _run_errors(click)
    config = click.option(
        "--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
        callback=_read_config, help="A TOML file of option values; flags override it.",
    )  # fmt: skip
    data = click.option("--data", required=True, help="CSV or Parquet file of readings.")
    encoding = click.option(
        "--encoding", default="utf-8", show_default=True, help="CSV text encoding."
    )
    as_json = click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")

    train_example = (
        "\b\nExample:\n    liquidnets train --data examples/sensor_readings.csv --time time "
        "--target co2_ppm --horizon 4 --out runs/co2"
    )

    @cli.command(epilog=train_example)
    @config
    @click.option("--data", help="CSV or Parquet file of readings (required unless --resume).")
    @click.option("--target", help="Column(s) to forecast or watch, comma-separated.")
    @click.option("--label", help="classify: the class column; anomaly: known anomalies (1/0).")
    @click.option("--time", help="Time column (timestamps or numbers); default: row order.")
    @click.option("--features", help="Input columns, comma-separated; default: all numeric.")
    @click.option(
        "--future", help="forecast: columns known ahead over the horizon (comma-separated)."
    )
    @click.option("--static", help="forecast: columns constant within each --id series.")
    @click.option(
        "--calendar/--no-calendar", default=False, show_default=True,
        help="forecast: calendar features (hour, weekday, month) of the forecast steps.",
    )  # fmt: skip
    @click.option("--id", "id_", help="Series id column (several series in one file).")
    @click.option(
        "--task", type=click.Choice(["forecast", "classify", "anomaly"]), default="forecast",
        show_default=True, help="What to learn.",
    )  # fmt: skip
    @click.option(
        "--model", default="cfc", show_default=True, help="cfc, ltc, cfc-ncp, ltc-ncp, lstm, gru."
    )
    @click.option(
        "--lookback", type=int,
        help="Input steps per window; default: forecast 32 or two seasons, else 32.",
    )  # fmt: skip
    @click.option("--horizon", default=1, show_default=True, help="Steps forecast at once.")
    @click.option("--stride", default=1, show_default=True, help="Steps between training windows.")
    @click.option(
        "--units", type=int, help="Neurons of the liquid model; default: forecast 64, else 32."
    )
    @click.option(
        "--season", callback=_season, default="auto", show_default=True,
        help="Period in steps (N, auto: from the timestamps, none): seasonal naive, base, MASE.",
    )  # fmt: skip
    @click.option(
        "--base", type=click.Choice(["auto", "last", "season"]), default="auto",
        show_default=True, help="forecast: learn the change from the last value or a season back.",
    )  # fmt: skip
    @click.option(
        "--linear/--no-linear", default=True, show_default=True,
        help="forecast: a linear map of the window's target history beside the network.",
    )  # fmt: skip
    @click.option(
        "--per", type=click.Choice(["window", "series"]), default="window", show_default=True,
        help="classify: a label per window (its last row) or per series (--id), each series "
        "classified whole.",
    )  # fmt: skip
    @click.option(
        "--quantile", default=0.99, show_default=True,
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        help="anomaly: validation-score quantile used as threshold when there are no labels.",
    )  # fmt: skip
    @click.option(
        "--missing", type=click.Choice(["error", "mask", "interpolate", "drop"]), default="error",
        show_default=True, help="What to do with missing values.",
    )  # fmt: skip
    @click.option(
        "--time-unit", help="Unit of the time steps (e.g. 1h, 15min); default: median step."
    )
    @click.option("--val", default=0.15, show_default=True, help="Validation fraction (by time).")
    @click.option("--test", default=0.15, show_default=True, help="Test fraction (by time).")
    @click.option(
        "--train-until", metavar="TIME|rows:N",
        help="forecast, anomaly: train (and validate) on the rows up to this time, or on the "
        "first N rows; test on everything after it, instead of --test.",
    )  # fmt: skip
    @click.option(
        "--tolerance", default=10, show_default=True,
        help="anomaly: readings a flag may lie before or after a labelled event and still find it.",
    )  # fmt: skip
    @click.option(
        "--split-column", metavar="COL",
        help="A column saying train, val or test per row (per series with --per series), "
        "instead of --val/--test; without val rows, validation is carved from train.",
    )  # fmt: skip
    @click.option(
        "--baselines/--no-baselines",
        default=True,
        show_default=True,
        help="Train and compare the baselines.",
    )
    @click.option(
        "--max-epochs", type=int, help="Upper bound on epochs; default 100 (--per series: 200)."
    )
    @click.option(
        "--batch-size", type=int, default=None,
        help="Windows per batch; default: 16-64 by size (--per series: 16 series).",
    )  # fmt: skip
    @click.option("--lr", default=3e-3, show_default=True, help="Learning rate (AdamW).")
    @click.option(
        "--patience", type=int,
        help="Early-stopping patience (epochs); default 10 (--per series: 30).",
    )  # fmt: skip
    @click.option(
        "--gradient-clip", default=1.0, show_default=True, help="Gradient norm clip (0: off)."
    )
    @click.option(
        "--schedule", type=click.Choice(["plateau", "cosine", "none"]), default="plateau",
        show_default=True, help="Learning-rate schedule.",
    )  # fmt: skip
    @click.option("--weight-decay", default=0.0, show_default=True, help="AdamW weight decay.")
    @click.option("--seed", default=0, show_default=True, help="Random seed.")
    @click.option(
        "--accelerator", default="auto", show_default=True, help="cpu, gpu, auto (Lightning)."
    )
    @click.option(
        "--devices", default="auto", show_default=True, help="Devices per node (Lightning)."
    )
    @click.option(
        "--strategy", default="auto", show_default=True, help="auto, ddp, ... (Lightning)."
    )
    @click.option("--num-nodes", default=1, show_default=True, help="Nodes (Lightning).")
    @encoding
    @click.option("--out", help="The run folder to create (required unless --resume).")
    @click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
    @click.option(
        "--resume", metavar="RUN_OR_TMP",
        help="Continue a killed run: the run folder it was writing (or the hidden temporary "
        "folder it left). Its own options are used; give none but --data for a moved file.",
    )  # fmt: skip
    @as_json
    def train(
        data, target, out, overwrite, resume, as_json, id_, features, future, static,
        time_unit, **options,
    ):  # fmt: skip
        """Train a liquid network and its baselines on a file of readings; evaluate them on
        the same test period and write the run folder (config, metrics, models, logs, plots).

        \b
        Tasks:
          forecast  the next --horizon values of --target
          classify  the class in --label, per window or per series
          anomaly   readings far from their forecast; scored with --label when given
        """
        from liquidnets.tasks.run import resume_run, train_run

        if resume is not None:
            with guard():
                result = resume_run(resume, data)
            _print_result(click, result, as_json, result.get("folder", resume))
            return
        if data is None or out is None:
            raise click.UsageError("train needs --data and --out (or --resume)")
        train_opts = {k: options.pop(k) for k in TRAIN_KEYS}
        # unset: the task's own default (a classifier of whole series trains differently)
        train_opts = {k: v for k, v in train_opts.items() if v is not None}
        if isinstance(train_opts["devices"], str) and train_opts["devices"].isdigit():
            train_opts["devices"] = int(train_opts["devices"])
        unit = float(time_unit) if time_unit and _is_number(time_unit) else time_unit
        with guard():
            result = train_run(
                data, out, target=_split(target), overwrite=overwrite, train=train_opts,
                id=id_, features=_split(features), future=_split(future),
                static=_split(static), time_unit=unit, **options,
            )  # fmt: skip
        _print_result(click, result, as_json, out)

    @cli.command(
        epilog="\b\nExample:\n    liquidnets evaluate runs/co2 --data examples/sensor_readings.csv"
    )
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @config
    @data
    @click.option(
        "--out", help="The folder to write the results to; default: RUN_DIR/evaluations/<time>."
    )
    @click.option("--overwrite", is_flag=True, help="Replace an earlier evaluation at --out.")
    @as_json
    def evaluate(run_dir, data, out, overwrite, as_json):
        """Evaluate every model of a run on the test period of a file (the run's split),
        beside its baselines, and print the table. The results go to a new folder; the run's
        own training results are never changed."""
        from liquidnets.tasks.run import evaluate_run

        with guard():
            result = evaluate_run(run_dir, data, out, overwrite=overwrite)
        _print_result(click, result, as_json, result["folder"], "results in")

    @cli.command(
        epilog="\b\nExample:\n    liquidnets predict runs/co2 --data examples/sensor_readings.csv "
        "--out forecast.csv"
    )
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @config
    @data
    @click.option("--out", required=True, help="CSV file to write the forecasts to.")
    @click.option(
        "--future-data", type=click.Path(dir_okay=False),
        help="forecast: a file of the --future columns over the horizon after the end.",
    )  # fmt: skip
    @click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
    def predict(run_dir, data, out, overwrite, future_data):
        """Apply a run's model to a file and write CSV: the forecasts after the end of the
        data, the classes with their probabilities, or the anomaly scores and flags."""
        from liquidnets.tasks.run import predict_run

        with guard():
            path = predict_run(run_dir, data, out, overwrite=overwrite, future=future_data)
        click.echo(f"wrote {path}")

    @cli.command(
        epilog="\b\nExample:\n    liquidnets stream runs/co2 --data examples/sensor_readings.csv "
        "--adapt drift --out stream.csv"
    )
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @config
    @data
    @click.option(
        "--adapt", default="off", show_default=True,
        help="Online learning: off, every:N (readings), drift or drift:N (after a drift).",
    )  # fmt: skip
    @click.option(
        "--params", type=click.Choice(["head", "time", "all"]), default="all", show_default=True,
        help="What adapts: the output layer, the time constants, or every weight.",
    )  # fmt: skip
    @click.option("--lr", default=1e-3, show_default=True, help="Online learning rate (<= 0.01).")
    @click.option(
        "--detector", type=click.Choice(["builtin", "adwin", "page_hinkley"]), default="builtin",
        show_default=True, help="Drift detector on the errors (adwin, page_hinkley: river's).",
    )  # fmt: skip
    @click.option("--model", help="A model of the run other than its main one (e.g. lstm).")
    @click.option("--snapshot", help="Folder to save the adapted predictor to at the end.")
    @click.option(
        "--snapshot-every", type=click.IntRange(min=1), metavar="N",
        help="Also snapshot after every N readings (a kill loses at most N readings of work; "
        "give the snapshot as RUN_DIR to continue).",
    )  # fmt: skip
    @click.option("--out", required=True, help="CSV file of per-reading forecasts and errors.")
    @click.option("--overwrite", is_flag=True, help="Replace existing output.")
    def stream(
        run_dir, data, out, overwrite, adapt, params, lr, detector, model, snapshot,
        snapshot_every,
    ):  # fmt: skip
        """Replay a file of readings as a live stream through a run's forecaster, one reading
        at a time, learning online as the truth arrives. Writes each reading's forecasts,
        errors, drift flags and updates, and prints the frozen model's error against the
        adaptive one's before and after each detected drift."""
        from liquidnets.deploy.replay import replay

        with guard():
            result = replay(
                run_dir, data, out, adapt=adapt, model=model, overwrite=overwrite,
                snapshot=snapshot, snapshot_every=snapshot_every, params=params, lr=lr,
                detector=detector,
            )  # fmt: skip
        click.echo(result["table"])
        click.echo(f"\nwrote {out}")

    @cli.command(epilog="\b\nExample:\n    liquidnets export runs/co2 --format onnx --out co2.onnx")
    @click.argument("source", type=click.Path(file_okay=False))
    @click.option(
        "--format", "format_", type=click.Choice(["onnx", "numpy"]), default=None,
        help="onnx (onnxruntime) or numpy (liquidnets.runtime); default: from --out's suffix.",
    )  # fmt: skip
    @click.option(
        "--quantize", type=click.Choice(["int8"]), default=None,
        help="Weight-only int8 (one scale per row): files about 3.5 times smaller.",
    )  # fmt: skip
    @click.option(
        "--window", type=int, is_flag=False, flag_value=0, default=None, metavar="[N]",
        help="Export a whole window of N readings, (x, dt) -> y, instead of a step; "
        "alone, the model's lookback (for classifiers).",
    )  # fmt: skip
    @click.option("--out", required=True, help="The model to write (.onnx or .npz).")
    @click.option("--overwrite", is_flag=True, help="Replace existing files.")
    def export(source, format_, quantize, window, out, overwrite):
        """Export the model of a forecast or classification run folder (or a saved model
        folder) for the edge: a step model, (x, h, dt) -> (y, h_next), or with --window a
        whole window; with a JSON sidecar (<out>.json) holding the sizes, names, input
        scaling and classes a device needs."""
        from liquidnets.deploy.export import export as export_model

        window = True if window == 0 else window
        with guard():
            path = export_model(
                source, out, format=format_, quantize=quantize, window=window,
                overwrite=overwrite,
            )  # fmt: skip
        click.echo(f"wrote {path} and {path}.json")


def _clean_command(cli, click) -> None:
    @cli.command(epilog="\b\nExample:\n    liquidnets clean runs")
    @click.argument("folders", nargs=-1, type=click.Path(file_okay=False, exists=True))
    def clean(folders):
        """Remove what killed runs left behind: the hidden temporary folders beside the run
        folders in FOLDERS (default: the current folder), putting an old run back where a
        kill stopped the swap, and the temporary folders of trainings whose process is gone
        (in the system's temporary directory). Nothing another process is writing is
        touched."""
        from liquidnets.io.atomic import tidy
        from liquidnets.train import remove_stale

        removed = [p for f in folders or (".",) for p in tidy(f)] + remove_stale()
        for path in removed:
            click.echo(f"removed {path}")
        click.echo(f"{len(removed)} left-over(s) removed")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _print_result(click, result: dict, as_json: bool, where, what: str = "run folder") -> None:
    from liquidnets.io.atomic import dumps

    if as_json:
        click.echo(dumps({"rows": result["rows"]}))
    else:
        click.echo(result["table"])
        click.echo(f"\n{what}: {where}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `liquidnets` command; `argv` defaults to `sys.argv[1:]`."""
    if importlib.util.find_spec("click") is None:
        sys.exit(MISSING_CLICK)
    build_cli().main(args=argv, prog_name="liquidnets")
