"""Train the LTC forecaster on data/sensor_readings.csv and save it to models/co2_ltc/.

    python train.py [--max-epochs N]
"""

import argparse
from pathlib import Path

from models.ltc_model import TARGET, TIME, make_model

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=60)
    args = parser.parse_args()
    model = make_model(max_epochs=args.max_epochs)
    model.fit(HERE / "data" / "sensor_readings.csv", targets=TARGET, time=TIME)
    path = model.save(HERE / "models" / "co2_ltc", overwrite=True)
    losses = model.history["val_loss"]
    print(f"trained {len(losses)} epochs, best validation loss {min(losses):.4f}; saved {path}")


if __name__ == "__main__":
    main()
