"""Where an offer runs: ISO 3166 country codes from providers' location text, and the coarse
region GPUBroker filters on.

Region is "eu" for the EU and EEA (where the GDPR applies, the same meaning "eu" has for LLM
providers' data residency) and the lowercase country code everywhere else ("us", "ca", "gb").
"""

from __future__ import annotations

import re
from functools import lru_cache

import pycountry

# EU-27 plus Iceland, Liechtenstein and Norway.
EEA = frozenset(
    {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT"}
    | {"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"}
)
ISO2 = re.compile(r"^[A-Z]{2}$")


@lru_cache(maxsize=512)
def country_code(text: str | None) -> str:
    """The ISO code in "Texas, US" or "Norway"; "" when the text names no country we know."""
    if not text:
        return ""
    last = text.rsplit(",", 1)[-1].strip()
    if ISO2.match(last) and pycountry.countries.get(alpha_2=last):
        return last
    try:
        return pycountry.countries.lookup(last).alpha_2
    except LookupError:
        return ""


def region_for(country: str) -> str:
    if not country:
        return ""
    return "eu" if country in EEA else country.lower()
