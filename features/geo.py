"""Countries: IP -> country from a CIDR table, time zones and calling codes per country.

No GeoIP database ships with riskwire. The IP country of an order is, in order:
``metadata["ip_country"]`` when the shop sends it, else a lookup in a CIDR table:
either MaxMind GeoLite2-Country-CSV files (:meth:`IpCountryTable.from_maxmind`) or a
two-column ``network,country_iso_code`` CSV; the default is the tiny demo table
``features/data/ip_country_demo.csv`` that the traffic generator's ranges map onto.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from features._data import data_path, read_csv_rows

__all__ = [
    "IpCountryTable",
    "calling_code_country",
    "country_timezone",
    "email_tld_country",
    "ip_prefix",
    "local_time",
    "phone_country",
]


class IpCountryTable:
    """Longest-prefix-free CIDR -> ISO country lookup (ranges must not overlap)."""

    def __init__(self, networks: list[tuple[str, str]]) -> None:
        spans: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for network, country in networks:
            net = ipaddress.ip_network(network.strip(), strict=False)
            spans[net.version].append((int(net.network_address), int(net.broadcast_address), country.strip().upper()))
        self._starts: dict[int, list[int]] = {}
        self._rows: dict[int, list[tuple[int, int, str]]] = {}
        for version, rows in spans.items():
            rows.sort()
            self._rows[version] = rows
            self._starts[version] = [r[0] for r in rows]
        self._cache: dict[str, str | None] = {}

    def __len__(self) -> int:
        return sum(len(r) for r in self._rows.values())

    @classmethod
    def from_csv(cls, path: Path) -> IpCountryTable:
        return cls([(r["network"], r["country_iso_code"]) for r in read_csv_rows(path) if r.get("country_iso_code")])

    @classmethod
    def from_maxmind(cls, blocks_csvs: list[Path], locations_csv: Path) -> IpCountryTable:
        """GeoLite2-Country-Blocks-IPv4/IPv6.csv + GeoLite2-Country-Locations-en.csv."""
        iso = {r["geoname_id"]: r["country_iso_code"] for r in read_csv_rows(locations_csv)}
        nets = []
        for path in blocks_csvs:
            for r in read_csv_rows(path):
                gid = r.get("geoname_id") or r.get("registered_country_geoname_id") or ""
                if iso.get(gid):
                    nets.append((r["network"], iso[gid]))
        return cls(nets)

    @classmethod
    @cache
    def demo(cls) -> IpCountryTable:
        return cls.from_csv(data_path("ip_country_demo.csv"))

    def lookup(self, ip: str | None) -> str | None:
        if not ip:
            return None
        hit = self._cache.get(ip, "")
        if hit != "":
            return hit
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        n = int(addr)
        starts = self._starts[addr.version]
        i = bisect_right(starts, n) - 1
        out = None
        if i >= 0:
            lo, hi, country = self._rows[addr.version][i]
            if lo <= n <= hi:
                out = country
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[ip] = out
        return out


@lru_cache(maxsize=65536)
def ip_prefix(ip: str | None) -> str | None:
    """The /24 of an IPv4 address or the /48 of an IPv6 address, as text."""
    if not ip:
        return None
    if ":" not in ip:
        head, _, _ = ip.rpartition(".")
        return head + ".0/24" if head else None
    try:
        net = ipaddress.ip_network(f"{ip}/48", strict=False)
    except ValueError:
        return None
    return str(net)


@cache
def _country_info() -> dict[str, tuple[str, str]]:
    return {r["country"]: (r["timezone"], r["calling_code"]) for r in read_csv_rows(data_path("country_info.csv"))}


@cache
def country_timezone(country: str | None) -> ZoneInfo | None:
    info = _country_info().get(country or "")
    if info is None:
        return None
    try:
        return ZoneInfo(info[0])
    except ZoneInfoNotFoundError:
        return None


def local_time(when: datetime, country: str | None) -> datetime:
    """``when`` at the country's representative zone (UTC when unknown)."""
    tz = country_timezone(country)
    return when.astimezone(tz) if tz is not None else when


@cache
def _calling_codes() -> dict[str, str]:
    out: dict[str, str] = {}
    for country, (_, code) in _country_info().items():
        out.setdefault(code, country)  # +1 -> US (first listed), +7 -> RU
    return out


def calling_code_country(code: str) -> str | None:
    return _calling_codes().get(code)


@lru_cache(maxsize=65536)
def phone_country(phone: str | None) -> str | None:
    """Country of an international phone number (``+48 ...`` or ``0048 ...``), if known."""
    if not phone:
        return None
    p = phone.strip()
    if p.startswith("00"):
        p = "+" + p[2:]
    if not p.startswith("+"):
        return None
    digits = "".join(ch for ch in p[1:5] if ch.isdigit())
    codes = _calling_codes()
    for n in (3, 2, 1):
        hit = codes.get(digits[:n])
        if hit:
            return hit
    return None


_TLD_EXCEPTIONS = {"uk": "GB", "eu": None, "io": None, "co": None, "me": None, "tv": None, "ai": None, "ac": None}


def email_tld_country(domain: str | None) -> str | None:
    """Country of a country-code top-level domain (``wp.pl`` -> PL), None for generic ones."""
    if not domain:
        return None
    tld = domain.rsplit(".", 1)[-1]
    if len(tld) != 2 or not tld.isalpha():
        return None
    if tld in _TLD_EXCEPTIONS:
        return _TLD_EXCEPTIONS[tld]
    return tld.upper()
