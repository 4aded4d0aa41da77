"""The one place the site turns numbers into text, with their units.

Units are the publication's: GB = 1e9 bytes, prices in USD per 1e6 tokens, a month = 730 hours.

Every formatter refuses what is not a value: ``None`` (no source gives it), NaN, +/-inf, and for
money and sizes a value that would print as zero (``$0.00``, ``0.0 GB``). It raises
``NotAValue``; the caller decides what the page says instead (``or_missing``), so a missing number
is never rendered as a placeholder. The Jinja environment's ``finalize`` (``check_output``) refuses
the same things for any value a template prints directly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from numbers import Real

HOURS_PER_MONTH = 730
GB = 1e9
MTOK = 1e6

#: words a rendered page must never contain as a value (tests scan the output for them)
FORBIDDEN_TOKENS = ("NaN", "nan", "inf", "None", "null", "$0.00", "undefined")


class NotAValue(ValueError):
    """A formatter was handed something that is not a number to show (None, NaN, inf, zero money)."""


def _number(value: object, what: str) -> float:
    if value is None:
        raise NotAValue(f"{what}: no value (None)")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise NotAValue(f"{what}: not a number: {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise NotAValue(f"{what}: {number!r} is not a value")
    return number


def _positive(value: object, what: str) -> float:
    number = _number(value, what)
    if number <= 0:
        raise NotAValue(f"{what}: {number!r} is not a positive amount")
    return number


def _sig(number: float, min_decimals: int) -> str:
    """Thousands separators; at least ``min_decimals`` decimals, more for small values so that
    two significant digits show (0.8 -> '0.80', 0.004 -> '0.0040', never '0.00')."""
    decimals = min_decimals
    if 0 < abs(number) < 1:
        decimals = max(decimals, 1 - math.floor(math.log10(abs(number))))
    return f"{number:,.{min(decimals, 8)}f}"


def integer(value: object) -> str:
    """A count: 126 -> '126', 131072 -> '131,072'. Zero is a count, so it is allowed."""
    number = _number(value, "count")
    if number != int(number):
        raise NotAValue(f"count: {number!r} is not whole")
    return f"{int(number):,}"


def params(value: object) -> str:
    """Parameter count, exact to three significant figures: 405853388800 -> '405.85 B'."""
    number = _positive(value, "parameters")
    if number >= 1e9:
        return f"{number / 1e9:,.2f} B"
    if number >= 1e6:
        return f"{number / 1e6:,.1f} M"
    return f"{int(number):,}"


def tokens(value: object) -> str:
    """A token count (context length): 131072 -> '131,072 tokens'."""
    return f"{integer(_positive(value, 'tokens'))} tokens"


def gb(value: object, decimals: int = 1) -> str:
    """GB (1e9 bytes): 811.7067776 -> '811.7 GB'; small values keep significant digits."""
    return f"{_sig(_positive(value, 'GB'), decimals)} GB"


def gb_signed(value: object, decimals: int = 1) -> str:
    """GB that may be negative or zero (headroom)."""
    number = _number(value, "GB")
    return f"{_sig(number, decimals)} GB"


def bytes_(value: object) -> str:
    """Bytes as an integer with the unit: 516096 -> '516,096 bytes'."""
    return f"{integer(_positive(value, 'bytes'))} bytes"


def usd(value: object) -> str:
    """Dollars: 10512 -> '$10,512'; 19534.8 -> '$19,535'; 6.5 -> '$6.50'; 0.004 -> '$0.004'."""
    number = _positive(value, "USD")
    if number >= 1000:
        return f"${number:,.0f}"
    return f"${_sig(number, 2)}"


def usd_per_mtok(value: object) -> str:
    """USD per 1e6 tokens: 0.8 -> '$0.80/M tokens'."""
    return f"${_sig(_positive(value, 'USD per 1M tokens'), 2)}/M tokens"


def usd_per_month(value: object) -> str:
    """USD per month (730 h): 10512 -> '$10,512/month'."""
    return f"{usd(value)}/month"


def usd_per_hour(value: object) -> str:
    return f"${_sig(_positive(value, 'USD per hour'), 2)}/h"


def tok_s(value: object) -> str:
    """Tokens per second: 2777.749 -> '2,778 tok/s'; 36.824 -> '36.8 tok/s'."""
    number = _positive(value, "tok/s")
    return f"{number:,.0f} tok/s" if number >= 100 else f"{_sig(number, 1)} tok/s"


def ms(value: object) -> str:
    """Milliseconds: 41.70 -> '41.7 ms'; 1666.8 -> '1,667 ms'."""
    number = _positive(value, "ms")
    return f"{number:,.0f} ms" if number >= 1000 else f"{_sig(number, 1)} ms"


def ratio(value: object) -> str:
    """A multiplicative factor: 1.363 -> '1.36x'."""
    return f"{_positive(value, 'ratio'):.2f}x"


def score(value: object) -> str:
    """Recommendation score, 0..100: 87.679 -> '87.7'."""
    number = _number(value, "score")
    if not -1e-9 <= number <= 100 + 1e-9:  # 100 * best / own may land a last bit over 100
        raise NotAValue(f"score: {number!r} outside 0..100")
    return f"{min(max(number, 0.0), 100.0):.1f}"


def percent(value: object) -> str:
    """A fraction as percent: 0.5 -> '50%'."""
    return f"{_number(value, 'fraction') * 100:.0f}%"


def mtok(value: object) -> str:
    """Millions of tokens: 6570 -> '6,570 M tokens'."""
    return f"{_sig(_positive(value, 'M tokens'), 0)} M tokens"


def tflops(value: object) -> str:
    return f"{_sig(_positive(value, 'TFLOPS'), 0)} TFLOPS"


def tops(value: object) -> str:
    """Integer throughput (INT8) in TOPS, dense."""
    return f"{_sig(_positive(value, 'TOPS'), 0)} TOPS"


def gbps(value: object) -> str:
    """Bandwidth in GB/s."""
    return f"{_sig(_positive(value, 'GB/s'), 0)} GB/s"


def watts(value: object) -> str:
    return f"{integer(_positive(value, 'W'))} W"


def date(value: object) -> str:
    """A date or timestamp as ISO date (UTC as published): '2026-11-30'."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise NotAValue(f"date: {value!r}")


def text(value: object) -> str:
    """A text value; refuses None, empty and the placeholder words."""
    if value is None:
        raise NotAValue("text: None")
    string = str(value).strip()
    if not string or string.lower() in {"none", "null", "nan", "n/a", "inf"}:
        raise NotAValue(f"text: {value!r} is not a value")
    return string


def yes_no(value: object) -> str:
    if not isinstance(value, bool):
        raise NotAValue(f"yes/no: {value!r}")
    return "yes" if value else "no"


def is_value(value: object) -> bool:
    """True when ``value`` can be shown (not None, not NaN/inf, not an empty string)."""
    if value is None:
        return False
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return False
    if isinstance(value, str) and not value.strip():
        return False
    return True


def or_missing(formatter: Callable[[object], str], value: object, missing: str) -> str:
    """``formatter(value)``, or the sentence ``missing`` when there is no value to show."""
    try:
        return formatter(value)
    except NotAValue:
        return missing


def check_output(value: object) -> object:
    """Jinja ``finalize``: a template may print text and formatted strings, never a raw None,
    NaN, inf or float (every number goes through a formatter above, with its unit)."""
    if value is None:
        raise NotAValue("a template printed None")
    if isinstance(value, float):
        raise NotAValue(f"a template printed a raw float {value!r}: format it with its unit")
    return value


FILTERS: dict[str, Callable[..., str]] = {
    "integer": integer,
    "params": params,
    "tokens": tokens,
    "gb": gb,
    "gb_signed": gb_signed,
    "bytes": bytes_,
    "usd": usd,
    "usd_per_mtok": usd_per_mtok,
    "usd_per_month": usd_per_month,
    "usd_per_hour": usd_per_hour,
    "tok_s": tok_s,
    "ms": ms,
    "ratio": ratio,
    "score": score,
    "percent": percent,
    "mtok": mtok,
    "tflops": tflops,
    "tops": tops,
    "gbps": gbps,
    "watts": watts,
    "date": date,
    "text": text,
    "yes_no": yes_no,
}
