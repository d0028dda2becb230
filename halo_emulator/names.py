"""Vocabulary for plausible MSP customers, and the catalogue of agreement subtypes and types."""

from __future__ import annotations

import random
from collections.abc import Container
from dataclasses import dataclass

_FIRST = (
    "Acme", "Apex", "Atlas", "Aurora", "Bayside", "Beacon", "Birch", "Blue Ridge", "Boulder", "Bright", "Canyon",
    "Cascade", "Cedar", "Summit", "Clearwater", "Coastal", "Copper", "Crescent", "Crown", "Delta", "Eagle", "Echo",
    "Elm", "Evergreen", "Falcon", "Fairview", "Frontier", "Golden", "Granite", "Harbor", "Harvest", "Highland",
    "Horizon", "Iron", "Juniper", "Keystone", "Lakeside", "Liberty", "Lighthouse", "Maple", "Meadow", "Meridian",
    "Midwest", "Mountain", "Northwind", "Oak", "Orchard", "Pacific", "Paramount", "Peak", "Pine", "Pinnacle",
    "Prairie", "Quantum", "Redwood", "Riverbend", "Riverside", "Rock Creek", "Sage", "Sierra", "Silver", "Sterling",
    "Stone", "Sunrise", "Tri-County", "Union", "Valley", "Vantage", "Vista", "Westfield", "Willow", "Summitview",
)  # fmt: skip
_SECOND = (
    "Accounting", "Architects", "Auto Group", "Bakery", "Builders", "Capital", "Chiropractic", "Clinic",
    "Construction", "Consulting", "Dental", "Design", "Distribution", "Electric", "Engineering", "Family Practice",
    "Financial", "Fitness", "Foods", "Freight", "Furniture", "Health", "Home Care", "Hospitality", "HVAC", "Insurance",
    "Investments", "Landscaping", "Law Group", "Logistics", "Manufacturing", "Marine", "Media", "Medical",
    "Mortgage", "Motors", "Optometry", "Partners", "Pediatrics", "Pharmacy", "Plumbing", "Printing", "Properties",
    "Realty", "Restaurants", "Roofing", "Supply", "Surveying", "Tax Services", "Title", "Veterinary", "Wealth",
)  # fmt: skip
_FORMS = ("LLC", "Inc", "Ltd", "Group", "& Co", "PC", "LLP", "Corp")
CITIES = (
    "Austin", "Boise", "Charlotte", "Columbus", "Denver", "Des Moines", "Fresno", "Grand Rapids", "Hartford",
    "Madison", "Omaha", "Portland", "Raleigh", "Reno", "Richmond", "Spokane", "Tampa", "Tucson", "Tulsa", "Wichita",
)  # fmt: skip
PEOPLE_FIRST = ("Alex", "Jamie", "Morgan", "Taylor", "Jordan", "Casey", "Riley", "Sam", "Dana", "Chris", "Pat", "Lee")
PEOPLE_LAST = ("Nguyen", "Smith", "Garcia", "Johnson", "Patel", "Brown", "Miller", "Davis", "Lopez", "Wilson", "Khan")
BILLING_MAILBOXES = ("accounts", "ap", "billing", "invoices", "finance")


class CompanyNames:
    """Unique company names drawn from the vocabulary; a clash gets a city, then a number."""

    def __init__(self, rng: random.Random, existing: Container[str] = frozenset()) -> None:
        self._rng = rng
        self._existing = existing
        self._taken: set[str] = set()

    def _free(self, name: str) -> bool:
        return name not in self._taken and name not in self._existing

    def take(self) -> str:
        rng = self._rng
        name = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_FORMS)}"
        if not self._free(name):
            name = f"{name} ({rng.choice(CITIES)})"
        number = 2
        base = name
        while not self._free(name):
            name = f"{base} {number}"
            number += 1
        self._taken.add(name)
        return name


def email_domain(company: str) -> str:
    """`Acme Dental LLC` -> `acmedental.com`."""
    words = [w for w in company.split() if w not in _FORMS and w.isalpha()][:2]
    return "".join(words).lower() + ".com"


@dataclass(frozen=True)
class Subtype:
    """An agreement subtype (the AP setup's "Agreement subtype"), its share of agreements and its monthly charge."""

    id: int
    name: str
    weight: float
    charge_min: int  # whole dollars per month
    charge_max: int
    recurring: bool
    contract_type: int


@dataclass(frozen=True)
class ContractType:
    id: int
    name: str
    prefix: str


CONTRACT_TYPES: dict[int, ContractType] = {
    1: ContractType(1, "Managed Services Agreement", "MSA"),
    2: ContractType(2, "Recurring Services", "RSA"),
    3: ContractType(3, "Block Hours", "BH"),
}
SUBTYPES: tuple[Subtype, ...] = (
    Subtype(1, "Managed Services", 0.35, 900, 12_000, True, 1),
    Subtype(2, "Backup", 0.15, 120, 900, True, 2),
    Subtype(3, "Microsoft 365", 0.20, 180, 3_200, True, 2),
    Subtype(4, "Break-fix", 0.10, 0, 0, False, 3),
    Subtype(5, "Security", 0.12, 250, 2_500, True, 2),
    Subtype(6, "VoIP", 0.08, 90, 1_200, True, 2),
)
SUBTYPES_BY_ID: dict[int, Subtype] = {s.id: s for s in SUBTYPES}


@dataclass(frozen=True)
class LookupTable:
    """One of the tenant's lookup tables besides the agreement subtypes: `values` are (row id, name)."""

    name: str
    values: tuple[tuple[int, str], ...]


OTHER_LOOKUPS: tuple[LookupTable, ...] = (
    # row ids overlapping the subtypes' (1-4): only the `lookupid` of each row, or the ids it lacks, tells them apart
    LookupTable("Ticket priority", ((1, "Critical"), (2, "High"), (3, "Medium"), (4, "Low"))),
    LookupTable("Site type", ((11, "Head office"), (12, "Branch"), (13, "Data centre"))),
    LookupTable("Contact title", ((21, "Owner"), (22, "IT manager"), (23, "Accounts"), (24, "Office manager"))),
)


@dataclass(frozen=True)
class Currency:
    """A currency as `/api/Currency` lists it: `code` is its id (an invoice's `currency_code`), `iso` its ISO code."""

    iso: str
    symbol: str
    code: int
    weight: float
    name: str = ""
    rate: float = 1.0


CURRENCIES: tuple[Currency, ...] = (
    Currency("USD", "$", 1, 0.92, "US Dollar", 1.0),
    Currency("CAD", "CA$", 2, 0.06, "Canadian Dollar", 1.36),
    Currency("GBP", "£", 3, 0.02, "Pound Sterling", 0.79),
)
CURRENCY_BY_ISO: dict[str, Currency] = {c.iso: c for c in CURRENCIES}
PAYMENT_METHODS: tuple[tuple[int, str, float], ...] = (
    (1, "Credit Card", 0.35),
    (2, "ACH", 0.40),
    (3, "Check", 0.20),
    (4, "Wire Transfer", 0.05),
)
