"""Resource quantities parse to the exact values Kubernetes gives them, and bad ones say what is allowed."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powertrain.core.quantity import format_amount, parse_quantity, resource_amount, resource_list


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("64Gi", Fraction(64 * 1024**3)),
        ("1.5G", Fraction(1_500_000_000)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        ("100Ki", Fraction(102_400)),
        ("0.1", Fraction(1, 10)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("+3k", Fraction(3000)),
        ("-2", Fraction(-2)),
        ("12n", Fraction(12, 10**9)),
        ("7u", Fraction(7, 10**6)),
        ("2.5e-3", Fraction(25, 10_000)),
        ("1Ei", Fraction(1024**6)),
        (" 3 ", Fraction(3)),
    ],
)
def test_parses_kubernetes_forms(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_numbers_from_json_are_accepted() -> None:
    assert parse_quantity(4) == 4
    assert parse_quantity(0.25) == Fraction(1, 4)


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "5 Gi", "1gi", "Gi", "1e", "1KiB", "--1", "1e999", "nan", "0x10"])
def test_bad_quantities_name_the_value_and_the_allowed_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="quantity") as exc:
        parse_quantity(bad)
    assert repr(bad) in str(exc.value)


@pytest.mark.parametrize("bad", [True, None, [1], float("inf")])
def test_non_quantities_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(bad)  # type: ignore[arg-type]


def test_scheduler_units_round_up() -> None:
    assert resource_amount("cpu", "500m") == 500
    assert resource_amount("cpu", "2") == 2000
    assert resource_amount("cpu", "0.0001") == 1  # never under-count a request
    assert resource_amount("memory", "64Gi") == 64 * 2**30
    assert resource_amount("memory", "1.5") == 2
    assert resource_amount("nvidia.com/gpu", "8") == 8
    assert resource_amount("nvidia.com/gpu", 8) == 8


def test_extended_resources_must_be_whole() -> None:
    with pytest.raises(ValueError, match=r"nvidia\.com/gpu: .*whole number"):
        resource_amount("nvidia.com/gpu", "0.5")
    assert resource_amount("hugepages-2Mi", "1.5") == 2  # hugepages are bytes, not extended resources


def test_negative_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="cpu: quantity '-1' is invalid: must be ≥ 0"):
        resource_amount("cpu", "-1")


def test_resource_list_errors_name_the_field() -> None:
    assert resource_list({"cpu": "250m", "memory": "1Gi"}) == {"cpu": 250, "memory": 2**30}
    with pytest.raises(ValueError, match=r"spec\.containers\[0\]\.resources\.requests\.cpu: quantity 'lots'"):
        resource_list({"cpu": "lots"}, "spec.containers[0].resources.requests")
    with pytest.raises(ValueError, match="must be an object"):
        resource_list(["cpu"], "x")  # type: ignore[arg-type]


_SUFFIXES = {"": 1, "k": 1000, "M": 10**6, "G": 10**9, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(sorted(_SUFFIXES)))
def test_integer_with_suffix_is_exact(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == number * _SUFFIXES[suffix]


@given(st.integers(min_value=0, max_value=10**9))
def test_millicores_round_trip(millis: int) -> None:
    assert resource_amount("cpu", format_amount("cpu", millis)) == millis
    assert resource_amount("cpu", f"{millis}m") == millis


@given(st.integers(min_value=0, max_value=2**50))
def test_memory_round_trip(amount: int) -> None:
    assert resource_amount("memory", format_amount("memory", amount)) == amount


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=-6, max_value=6),
)
def test_decimal_and_exponent_forms_agree(whole: int, frac: int, exponent: int) -> None:
    text = f"{whole}.{frac}"
    base = Fraction(text)
    assert parse_quantity(f"{text}e{exponent}") == base * Fraction(10) ** exponent


@given(st.text(max_size=12))
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    try:
        parse_quantity(text)
    except ValueError as exc:
        assert "quantity" in str(exc)
