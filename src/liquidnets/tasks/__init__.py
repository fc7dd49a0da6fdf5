"""Tasks on sensor series: forecasting (with classification and anomaly detection to come),
each a class with `fit`, `predict`, `backtest`, `save` and `load`, and the runs that the
`liquidnets train/evaluate/predict` commands make of them.

    from liquidnets.tasks import Forecaster
    model = Forecaster("cfc", lookback=32, horizon=4)
    model.fit("examples/sensor_readings.csv", targets="co2_ppm", time="time")
    model.backtest("examples/sensor_readings.csv")["metrics"]
"""

from liquidnets.tasks.forecast import Forecaster
from liquidnets.tasks.models import MODELS

__all__ = ["MODELS", "Forecaster"]
