"""The model of this project: an LTC forecaster of the room's CO2, one hour (4 readings) ahead,
from the last 8 hours (32 readings) of all four sensors."""

from liquidnets.tasks import Forecaster

TARGET = "co2_ppm"
TIME = "time"


def make_model(max_epochs: int = 60, seed: int = 0) -> Forecaster:
    return Forecaster(
        "ltc",
        lookback=32,
        horizon=4,
        units=16,
        train={"max_epochs": max_epochs, "patience": 8, "lr": 5e-3, "seed": seed},
    )
