"""Evaluate the saved forecaster on the test period beside a naive forecast, and plot it.

    python evaluate.py
"""

from pathlib import Path

from models.ltc_model import TARGET, TIME

from liquidnets.tasks import Forecaster
from liquidnets.tasks.metrics import format_table
from liquidnets.tasks.plots import plot_forecast

HERE = Path(__file__).parent


def main() -> None:
    data = HERE / "data" / "sensor_readings.csv"
    model = Forecaster.load(HERE / "models" / "co2_ltc")
    naive = Forecaster("naive", lookback=model.lookback, horizon=model.horizon)
    naive.fit(data, targets=TARGET, time=TIME)
    rows = []
    for name, m in (("ltc", model), ("naive", naive)):
        result = m.backtest(data)
        rows.append({"model": name, **result["metrics"]})
        if name == "ltc":
            first = result["predicted"][:, 0]
            plot_forecast(
                HERE / "forecast.png", result["times"], result["actual"][:, 0], first,
                title="CO2 one reading ahead", target_names=[TARGET],
            )  # fmt: skip
    print(format_table(rows, ["mae", "rmse", "smape", "mase", "r2"], title="Test period"))


if __name__ == "__main__":
    main()
