"""Country codes from providers' location text (Vast's `geolocation`, io.net's `location`)."""

from __future__ import annotations

import pytest

from providers.geo import country_code, region_for


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Texas, US", "US"),
        ("Quebec, CA", "CA"),
        ("Norway", "NO"),
        ("Czechia", "CZ"),
        ("South Korea", "KR"),
        ("US", "US"),
        ("Russia", "RU"),  # ISO: "Russian Federation"
        ("Turkey", "TR"),  # ISO: "Türkiye"
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("The Netherlands", "NL"),
        ("Korea, Republic of", "KR"),  # ISO's own name, comma and all
        ("Taiwan, Province of China", "TW"),
        ("Georgia, US", "US"),  # the state, not the country
        ("Georgia", "GE"),
        ("Europe", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_it_derives_an_iso_code_from_location_text(text, code):
    assert country_code(text) == code


def test_it_puts_the_eea_in_eu_and_everywhere_else_under_its_own_code():
    assert [region_for(c) for c in ("NO", "DE", "GB", "RU", "")] == ["eu", "eu", "gb", "ru", ""]
