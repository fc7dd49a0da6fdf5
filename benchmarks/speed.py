"""Speed benchmark: liquidnets vs ncps 1.0.1 vs torch LSTM/GRU (the logic: `liquidnets.bench`).

    python benchmarks/speed.py            # the full run, about 5-10 minutes on 2 CPU threads
    python benchmarks/speed.py --quick    # a smoke test of a few seconds
    python benchmarks/speed.py --help

Writes `results/speed-<device>.json` beside this script unless `--json` says where.
"""

from pathlib import Path

from liquidnets import bench

if __name__ == "__main__":
    bench.main(results_dir=Path(__file__).parent / "results")
