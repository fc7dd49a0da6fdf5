"""The season and the window length a forecaster adapts to its data, from the training part
only: numpy only.

>>> import numpy as np
>>> from liquidnets.data import SeriesSet
>>> hours = np.arange(24 * 20).astype("timedelta64[h]") + np.datetime64("2024-01-01T00", "ns")
>>> values = np.zeros((len(hours), 1), np.float32)
>>> s = SeriesSet(
...     ["x"],
...     ["x"],
...     [""],
...     [values],
...     [hours],
...     [np.ones(len(hours), np.float32)],
...     [np.arange(len(hours))],
...     "t",
...     None,
...     "1h",
...     None,
...     "f",
... )
>>> infer_season(s, train_rows=24 * 14)
24
>>> auto_lookback(24, horizon=24, train_rows=[24 * 14])
48
>>> auto_lookback(12, horizon=12, train_rows=[100])  # two seasons: 32 does not fit
24
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liquidnets.data.table import SeriesSet

__all__ = ["auto_lookback", "infer_season"]

DAY = 86_400.0
# (shortest step, longest step, the cycle a user would name first), steps in seconds: readings
# within a day repeat daily, daily readings weekly, weekly to quarterly readings yearly
_CYCLES = (
    (0.0, DAY, DAY),
    (DAY, 7 * DAY, 7 * DAY),
    (7 * DAY, 365.25 * DAY / 2, 365.25 * DAY),
)
LONGEST = 400  # seasons longer than this many steps (minute data's day) are not used


def infer_season(series: SeriesSet, train_rows: int) -> int | None:
    """The season in steps implied by the timestamps' median step, or None.

    A day of readings for steps under a day (48 half-hourly, 24 hourly, 96 of 15 minutes), a
    week of daily readings (7), a year of weekly (52), monthly (12) or quarterly (4) ones.
    None without timestamps (numbers or row order tell no calendar), for yearly or coarser
    steps, for a season longer than `LONGEST` steps, and when the shortest training part
    (`train_rows`) holds fewer than two seasons.

    Args:
        series: the validated series.
        train_rows: rows in the shortest series' training part.
    """
    steps = [np.diff(t) for t in series.times if len(t) > 1]
    if not steps or series.times[0].dtype.kind != "M":
        return None
    step = float(np.median(np.concatenate(steps)).astype("timedelta64[ns]").astype(np.int64))
    step /= 1e9  # seconds
    if step <= 0:
        return None
    for low, high, cycle in _CYCLES:
        if low <= step < high:
            m = round(cycle / step)
            if 2 <= m <= LONGEST and 2 * m <= train_rows:
                return m
            return None
    return None


def auto_lookback(season: int | None, horizon: int, train_rows: Sequence[int]) -> int:
    """The default window, the first of these that fits: `max(32, 2 * season)`, two seasons,
    one season, 32 steps; else as long as fits. A window fits when the median series'
    training part holds four times its length, so that most training rows start a window.

    Args:
        season: the season in steps, or None.
        horizon: the forecast steps.
        train_rows: rows in each series' training part.
    """
    room = int(np.median(train_rows)) // 4 if len(train_rows) else 32
    room = max(1, min(room, int(np.median(train_rows)) - horizon if len(train_rows) else room))
    wanted = [max(32, 2 * season), 2 * season, season, 32] if season else [32]
    return next((w for w in wanted if w <= room), room)


def season_room(horizon: int, train_rows: Sequence[int]) -> int:
    """The longest window a seasonal base may widen the default to on a short series: one
    that, with the horizon, still leaves a quarter of the median training part as window
    starts (`auto_lookback` asks for three quarters)."""
    if not len(train_rows):
        return 0
    rows = int(np.median(train_rows))
    return max(0, (3 * rows) // 4 - horizon + 1)
