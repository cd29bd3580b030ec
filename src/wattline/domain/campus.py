"""Campus figures: energy, cost, on-time and quality of a device or classroom over a period.

A :class:`Figures` holds exact integers — energy in milli-Wh, cost in micro-units of
the currency, on-time in seconds, the energy of high-confidence entries in milli-Wh —
and adds up exactly, so a classroom's day is the sum of its devices' days, of its
hours, of its 5-minute buckets, to the milli-Wh and the micro-unit. Conversion to
kWh and currency units happens once, at the edge (:func:`kwh`, :func:`money`), the
same way for every answer, so the cards, the charts and the export show the same
numbers.

Quality: ``high_confidence_pct`` is the share of the energy from entries without
``Flag.GAP | Flag.LOW_CONFIDENCE`` (``quality.LOW_QUALITY``); ``estimated`` energy is
the rest. A figure below :data:`ESTIMATED_BELOW_PCT` is shown as estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from wattline.domain import timeutil
from wattline.domain.quality import Flag

MILLI_WH_PER_KWH = 1_000_000
MICRO_PER_UNIT = 1_000_000

# below this share of high-confidence energy (percent) a figure is labelled "estimated"
ESTIMATED_BELOW_PCT = 90.0

# bucket widths the timeline accepts (minutes) and the period each one reads
BUCKET_PERIODS = {5: "5min", 15: "15min", 60: "hour", 1440: "day"}
MAX_TIMELINE_BUCKETS = 2000  # ~ a week of 5-minute buckets, 83 days of hours, 5 years of days
MAX_EXPORT_DAYS = 366
MIN_YEAR, MAX_YEAR = 1970, 2200  # calendar range the API accepts (epoch seconds stay small)

# flags that make a bucket's figure not fully measured
_SHOWN_FLAGS = Flag.GAP | Flag.LOW_CONFIDENCE | Flag.ESTIMATED | Flag.RESET | Flag.SWITCHED_OFF


@dataclass(frozen=True)
class Figures:
    """Exact totals of one device or classroom over one period.

    ``energy_milli_wh``: energy (milli-Wh); ``cost_micro``: cost of its priced part
    (micro-units of the currency); ``unpriced_milli_wh``: the part of the energy no cost
    version prices (milli-Wh); ``on_time_s``: seconds with the switch on (summed over
    devices); ``hc_energy_milli_wh``: energy of high-confidence entries (milli-Wh);
    ``flags``: ``quality.Flag`` bits or-ed; ``mixed_currency``: priced in several
    currencies (the cost is then not a sum of one currency); ``tariff_in_effect``: some
    cost version applies at some instant of the period. All of them add up (or or-up)
    exactly over the buckets of a period and over devices."""

    energy_milli_wh: int = 0
    cost_micro: int = 0
    unpriced_milli_wh: int = 0
    on_time_s: int = 0
    hc_energy_milli_wh: int = 0
    flags: int = 0
    mixed_currency: bool = False
    tariff_in_effect: bool = False

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(self.energy_milli_wh + other.energy_milli_wh, self.cost_micro + other.cost_micro,
                       self.unpriced_milli_wh + other.unpriced_milli_wh, self.on_time_s + other.on_time_s,
                       self.hc_energy_milli_wh + other.hc_energy_milli_wh, self.flags | other.flags,
                       self.mixed_currency or other.mixed_currency, self.tariff_in_effect or other.tariff_in_effect)

    @property
    def shown_cost_micro(self) -> int | None:
        """The cost to show: None when no cost version applies during the period, when
        all of its energy is unpriced, or when it is priced in several currencies; 0 for
        no energy under a version. A function of exact sums and ors, so a day shows a
        cost exactly when the sum of its buckets does, and the same one."""
        if self.mixed_currency or not self.tariff_in_effect:
            return None
        if self.energy_milli_wh > 0 and self.unpriced_milli_wh >= self.energy_milli_wh:
            return None
        return self.cost_micro

    @property
    def partly_unpriced(self) -> bool:
        return 0 < self.unpriced_milli_wh < self.energy_milli_wh

    @property
    def estimated_milli_wh(self) -> int:
        """Energy not from high-confidence entries, milli-Wh (never negative)."""
        return max(self.energy_milli_wh - self.hc_energy_milli_wh, 0)

    @property
    def high_confidence_pct(self) -> float | None:
        """Share of the energy from high-confidence entries, percent with 2 decimals;
        None without energy (nothing to be confident about)."""
        if self.energy_milli_wh <= 0:
            return None
        hc = min(max(self.hc_energy_milli_wh, 0), self.energy_milli_wh)
        return round(100.0 * hc / self.energy_milli_wh, 2)

    @property
    def estimated(self) -> bool:
        """Whether the figure is to be labelled estimated."""
        pct = self.high_confidence_pct
        return pct is not None and pct < ESTIMATED_BELOW_PCT


def total(figures: Iterable[Figures]) -> Figures:
    """The exact sum of ``figures`` (an empty sum: no energy, no cost)."""
    out = Figures()
    for f in figures:
        out = out + f
    return out


def kwh(milli_wh: int) -> float:
    """Milli-Wh as kWh (the nearest double to the exact 6-decimal value; ``round(x * 1e6)``
    gives the integer back)."""
    return int(milli_wh) / MILLI_WH_PER_KWH


def money(micro: int | None) -> float | None:
    """Micro-units as currency units (as :func:`kwh`); None stays None."""
    return None if micro is None else int(micro) / MICRO_PER_UNIT


def flag_names(f: Figures) -> list[str]:
    """The quality notes of a figure worth showing: its flags (gap, low_confidence,
    estimated...) and the cost's (partly_unpriced, mixed_currency)."""
    names = [x.name.lower() for x in Flag if f.flags & x and x & _SHOWN_FLAGS]
    return names + (["partly_unpriced"] if f.partly_unpriced else []) + (["mixed_currency"] if f.mixed_currency else [])


# ------------------------------------------------------------------ periods


class PeriodError(ValueError):
    """A period parameter the API refuses; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def check_date(parameter: str, d: date) -> date:
    """``d`` if inside the calendar range the API serves, else :class:`PeriodError`."""
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise PeriodError(parameter, f"{parameter} must be a date between {MIN_YEAR} and {MAX_YEAR}")
    return d


def parse_local_instant(parameter: str, text: str, tz: str, *, end: bool) -> int:
    """A timeline bound as UTC epoch seconds.

    ``text`` is a date (``2025-11-05``: its local midnight for a start; the midnight
    after it for an end, so an end date is included) or an ISO-8601 datetime, read in
    zone ``tz`` when it carries no offset.
    """
    text = (text or "").strip()
    try:
        if len(text) == 10:
            d = check_date(parameter, date.fromisoformat(text))
            return timeutil.local_midnight(d + timedelta(days=1) if end else d, tz)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except PeriodError:
        raise
    except ValueError:
        raise PeriodError(parameter, f"{parameter} must be a date (YYYY-MM-DD) or an ISO-8601 datetime, "
                                     f"not {text[:40]!r}") from None
    check_date(parameter, dt.date())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timeutil.zone(tz))
    return int(dt.timestamp())


def days_between(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
