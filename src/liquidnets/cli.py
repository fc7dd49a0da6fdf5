"""The `liquidnets` command (Click; `pip install liquidnets[cli]`): thin, over the Python API.

    liquidnets bench --quick          # the speed benchmark of liquidnets.bench
    python -m liquidnets bench --help

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

    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `liquidnets` command; `argv` defaults to `sys.argv[1:]`."""
    if importlib.util.find_spec("click") is None:
        sys.exit(MISSING_CLICK)
    build_cli().main(args=argv, prog_name="liquidnets")
