"""Tasks on sensor series: forecasting, sequence classification and anomaly detection, each a
class with `fit`, `predict`, `backtest`, `save` and `load` (`predict_proba` for the
classifier), and the runs that the `liquidnets train/evaluate/predict` commands make of them.

    from liquidnets.tasks import Forecaster
    model = Forecaster("cfc", lookback=32, horizon=4)
    model.fit("examples/sensor_readings.csv", targets="co2_ppm", time="time")
    model.backtest("examples/sensor_readings.csv")["metrics"]
"""

from liquidnets.tasks.anomaly import AnomalyDetector
from liquidnets.tasks.classify import Classifier
from liquidnets.tasks.forecast import Forecaster
from liquidnets.tasks.models import MODELS

__all__ = ["MODELS", "AnomalyDetector", "Classifier", "Forecaster"]
