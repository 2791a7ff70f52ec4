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
# Everyday English names (as geo-IP databases print them) that ISO 3166, and so pycountry,
# spells otherwise ("Russian Federation", "Türkiye", "United Kingdom", ...).
COMMON_NAMES = {
    "russia": "RU",
    "turkey": "TR",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "the netherlands": "NL",
    "holland": "NL",
    "uae": "AE",
    "brunei": "BN",
    "ivory coast": "CI",
    "cape verde": "CV",
    "macau": "MO",
    "palestine": "PS",
    "vatican": "VA",
    "vatican city": "VA",
    "micronesia": "FM",
    "dr congo": "CD",
    "congo republic": "CG",
    "st kitts and nevis": "KN",
    "reunion": "RE",
    "curacao": "CW",
}


@lru_cache(maxsize=512)
def country_code(text: str | None) -> str:
    """The ISO code in "Texas, US", "Norway", "Russia" or ISO's own "Korea, Republic of";
    "" when the text names no country we know."""
    if not text:
        return ""
    last = text.rsplit(",", 1)[-1].strip()
    if ISO2.match(last) and pycountry.countries.get(alpha_2=last):
        return last
    for name in dict.fromkeys((text.strip(), last)):
        try:
            return pycountry.countries.lookup(name).alpha_2
        except LookupError:
            pass
    return COMMON_NAMES.get(last.lower(), "")


def region_for(country: str) -> str:
    if not country:
        return ""
    return "eu" if country in EEA else country.lower()
