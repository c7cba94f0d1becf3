"""Kubernetes resource quantities ("500m", "64Gi", "1e3") as exact numbers.

The grammar is the one of k8s.io/apimachinery's `resource.Quantity`: a signed decimal number followed by
either a binary suffix (Ki … Ei), a decimal SI suffix (n u m "" k M G T P E) or a decimal exponent (e3,
E-2). Values are kept as `Fraction`s so "0.1" + "0.2" is exactly "0.3"; conversions to the integer units
the scheduler compares (millicores for cpu, bytes for memory, whole units for everything else) round up,
as the API server does, so a request is never under-counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Final

CPU: Final = "cpu"
MEMORY: Final = "memory"
PODS: Final = "pods"

_BINARY: Final[dict[str, int]] = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final[dict[str, int]] = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The exponent alternative comes first: "1E3" is 1000 (an exponent), while "1E" alone is 10^18 (exa).
_QUANTITY: Final = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?"
)
# Beyond these the number cannot describe a real resource; refusing them keeps Fraction arithmetic cheap.
_MAX_TEXT: Final = 64
_MAX_EXPONENT: Final = 64

ALLOWED_FORMS: Final = (
    "a number with an optional suffix: n, u, m, k, M, G, T, P, E (powers of 1000), Ki, Mi, Gi, Ti, Pi, Ei "
    "(powers of 1024) or an exponent such as 1e3"
)


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError names the value and the allowed forms."""
    if isinstance(value, bool):
        raise ValueError(f"quantity {value!r} is invalid: must be {ALLOWED_FORMS}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"quantity {value!r} is invalid: must be a finite number")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise ValueError(f"quantity {value!r} is invalid: must be a string or a number")
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        raise ValueError(f"quantity {value!r} is invalid: must be {ALLOWED_FORMS}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"quantity {value!r} is invalid: must be {ALLOWED_FORMS}")
    number = Fraction(match["number"])
    if match["sign"] == "-":
        number = -number
    if match["exponent"] is not None:
        exponent = int(match["exponent"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(f"quantity {value!r} is invalid: exponent must lie within ±{_MAX_EXPONENT}")
        return number * Fraction(10) ** exponent
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Fraction(1024) ** _BINARY[suffix]
    return number * Fraction(10) ** _DECIMAL[suffix]


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def is_extended_resource(name: str) -> bool:
    """Extended resources (nvidia.com/gpu, example.com/foo) are counted in whole units only."""
    if "/" not in name:
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io")) and not name.startswith("hugepages-")


def resource_amount(name: str, value: str | int | float) -> int:
    """A quantity in the integer unit the scheduler compares: millicores for cpu, whole units otherwise.

    Memory and storage are whole bytes (rounded up); extended resources such as `nvidia.com/gpu` must be
    whole numbers, as the API server requires. Negative amounts are refused.
    """
    try:
        amount = parse_quantity(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if amount < 0:
        raise ValueError(f"{name}: quantity {value!r} is invalid: must be ≥ 0")
    if name == CPU:
        return _ceil(amount * 1000)
    if is_extended_resource(name) and amount.denominator != 1:
        raise ValueError(f"{name}: quantity {value!r} is invalid: must be a whole number for an extended resource")
    return _ceil(amount)


def resource_list(values: Mapping[str, object] | None, field: str = "resources") -> dict[str, int]:
    """A core/v1 ResourceList (name → quantity) in scheduler units; ValueError names the field and value."""
    out: dict[str, int] = {}
    if not values:
        return out
    if not isinstance(values, Mapping):
        raise ValueError(f"{field}: {values!r} is invalid: must be an object of resource name to quantity")
    for name, raw in values.items():
        if not isinstance(raw, str | int | float):
            raise ValueError(f"{field}.{name}: {raw!r} is invalid: must be {ALLOWED_FORMS}")
        try:
            out[str(name)] = resource_amount(str(name), raw)
        except ValueError as exc:
            raise ValueError(f"{field}.{exc}") from None
    return out


def format_amount(name: str, amount: int) -> str:
    """The canonical quantity text for a scheduler-unit amount (for messages and rendered pods)."""
    if name == CPU:
        return str(amount // 1000) if amount % 1000 == 0 else f"{amount}m"
    if name == MEMORY or name == "ephemeral-storage":
        for suffix, power in reversed(_BINARY.items()):
            unit = 1024**power
            if amount >= unit and amount % unit == 0:
                return f"{amount // unit}{suffix}"
    return str(amount)
