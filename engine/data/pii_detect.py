"""Detectors of personal data in one piece of text: e-mail, phone, IP, payment card, secret URL, name.

Each detector yields :class:`Match` objects with a character span (Python ``str`` indices, so
CJK and other non-ASCII text around a match keeps offsets right) and a normalised ``value``: two
matches with the same kind and value are the same datum and get the same placeholder. Used by
:mod:`engine.data.pii`, which resolves overlaps and numbers the placeholders.

Token boundaries use ASCII classes (``[0-9A-Za-z]``) rather than ``\\w`` on purpose: ``\\w``
matches CJK characters, and CJK text writes no spaces around an e-mail address or IP address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

KINDS = ("email", "phone", "ip", "card", "url", "name")

# Ties in length go to the more specific kind (lower number): a secret URL over the e-mail
# address in it, a Luhn-checked card number over a phone-number reading of the same digits.
PRIORITY = {"url": 0, "email": 1, "card": 2, "ip": 3, "phone": 4, "name": 5}

DEFAULT_SECRET_PARAMS = (
    "token", "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "key",
    "sig", "signature", "password", "passwd", "pwd", "secret", "client_secret", "auth", "session",
    "session_id", "sessionid",
)
# A query parameter whose name ends in one of these (after ``_``/``-``) is a secret too, e.g.
# ``private_token`` or ``X-Amz-Signature``.
_SECRET_SUFFIXES = ("_token", "_key", "_secret", "_signature", "_sig", "_password")

# IIN (issuer identification number) prefixes of payment cards and their number lengths, from
# Wikipedia "Payment card number" (ISO/IEC 7812 ranges: Visa, Mastercard, American Express,
# Discover, Diners Club, JCB, UnionPay, Maestro, Mir, RuPay). Rows: (low, high, lengths); a
# number matches a row when its first len(low) digits lie in [low, high].
CARD_IINS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),                                   # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),               # Mastercard
    ("34", "34", (15,)), ("37", "37", (15,)),                   # American Express
    ("6011", "6011", tuple(range(16, 20))), ("644", "649", tuple(range(16, 20))),
    ("65", "65", tuple(range(16, 20))),                         # Discover
    ("36", "36", tuple(range(14, 20))), ("300", "305", tuple(range(16, 20))),
    ("38", "39", tuple(range(16, 20))),                         # Diners Club
    ("3528", "3589", tuple(range(16, 20))),                     # JCB
    ("62", "62", tuple(range(16, 20))), ("81", "81", tuple(range(16, 20))),  # UnionPay
    ("5018", "5018", tuple(range(13, 20))), ("5020", "5020", tuple(range(13, 20))),
    ("5038", "5038", tuple(range(13, 20))), ("6304", "6304", tuple(range(13, 20))),
    ("6759", "6759", tuple(range(13, 20))), ("6761", "6763", tuple(range(13, 20))),  # Maestro
    ("2200", "2204", tuple(range(16, 20))),                     # Mir
    ("60", "60", (16,)), ("508", "508", (16,)),                 # RuPay
)

_EMAIL = re.compile(
    r"(?<![0-9A-Za-z._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![0-9A-Za-z-])")
# Not part of a longer dotted run: "1.2.3.4.5" (a version string) yields nothing.
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?[0-9A-Za-z])")
# Starts with up to 4 hex digits and a colon, so plain words made of hex letters are skipped fast.
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f](?![0-9A-Za-z])")
# 13-19 digits, single spaces or dashes between them, not inside a longer run of digits.
_CARD = re.compile(r"(?<![0-9A-Za-z])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)(?![A-Za-z])")
# At least 7 digits, at most 3 other characters between neighbours: the shortest phone number
# the matcher accepts here (bare runs need 10, see find_phones) is 7 digits with separators.
_MAYBE_PHONE = re.compile(r"\d(?:\D{0,3}\d){6}")
_URL = re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s<>\"'`]+")
_URL_TRAILING = ".,;:!?)]}*"


@dataclass(frozen=True)
class Match:
    """One detected datum in a text.

    Attributes:
        start, end: character span in the text (``text[start:end]`` is the match).
        kind: one of :data:`KINDS`.
        text: the matched text as written.
        value: the normalised value that decides the placeholder (e-mail lower-cased, phone in
            E.164, card digits only, IP address compressed, name case-folded).
    """

    start: int
    end: int
    kind: str
    text: str
    value: str


def find_emails(text: str) -> Iterator[Match]:
    """E-mail addresses (ASCII addresses with a dotted domain); value is the address lower-cased."""
    for m in _EMAIL.finditer(text):
        yield Match(m.start(), m.end(), "email", m.group(), m.group().lower())


def find_phones(text: str, region: str | None) -> Iterator[Match]:
    """Phone numbers found by ``phonenumbers.PhoneNumberMatcher`` at ``Leniency.VALID``.

    Args:
        text: the text to scan.
        region: ISO 3166 region for numbers written without ``+`` (e.g. ``"US"``); ``None``
            finds only international numbers written with ``+``.

    The VALID leniency rejects numbers whose area code or length is impossible for the region,
    and the matcher skips dates and times. A bare run of fewer than 10 digits (no ``+``, space,
    dash, dot or bracket) is skipped: the US metadata accepts ``3104248`` as a valid number, but
    in chat data such runs are order or ticket numbers far more often. Value is the number in
    E.164 (``+12025550123``).
    """
    if not _MAYBE_PHONE.search(text):  # the matcher costs ~1 ms per candidate; most text has none
        return
    import phonenumbers

    for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        if m.raw_string.isdigit() and len(m.raw_string) < 10:
            continue
        value = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        yield Match(m.start, m.end, "phone", m.raw_string, value)


def find_ips(text: str) -> Iterator[Match]:
    """IPv4 and IPv6 addresses, validated by :mod:`ipaddress`; loopback and unspecified skipped.

    ``127.0.0.1``, ``::1``, ``0.0.0.0`` and ``::`` identify nobody, so they are not flagged.
    Value is the address as :mod:`ipaddress` writes it (IPv6 compressed, lower case).
    """
    for pattern, needs_colons in ((_IPV4, False), (_IPV6, True)):
        for m in pattern.finditer(text):
            if needs_colons and m.group().count(":") < 2:
                continue
            address = _ip_or_none(m.group())
            if address is not None and not (address.is_loopback or address.is_unspecified):
                yield Match(m.start(), m.end(), "ip", m.group(), str(address))


def _ip_or_none(candidate: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def find_cards(text: str) -> Iterator[Match]:
    """Payment card numbers: 13-19 digits (spaces/dashes allowed), Luhn-valid, known IIN prefix.

    The Luhn check (``stdnum.luhn``) alone passes one random digit run in ten; requiring a known
    issuer prefix with a matching length (:data:`CARD_IINS`) keeps order numbers out. Value is
    the digits only.
    """
    from stdnum import luhn

    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if luhn.is_valid(digits) and _known_iin(digits):
            yield Match(m.start(), m.end(), "card", m.group(), digits)


def _known_iin(digits: str) -> bool:
    return any(len(digits) in lengths and low <= digits[:len(low)] <= high
               for low, high, lengths in CARD_IINS)


def find_secret_urls(text: str, secret_params: tuple[str, ...]) -> Iterator[Match]:
    """URLs that carry a secret: ``user:password@`` or a secret query/fragment parameter.

    The WHOLE URL is the match, not just the secret: the rest of such a link (host, path with a
    user or reset id) often identifies the person as well, and a half-masked link is useless
    anyway. Parameter names compare case-insensitively with ``-`` read as ``_``; a blank value
    is no secret. URLs without a secret are not flagged. Value is the URL as written.
    """
    for m in _URL.finditer(text):
        url = m.group().rstrip(_URL_TRAILING)
        if _has_secret(url, secret_params):
            yield Match(m.start(), m.start() + len(url), "url", url, url)


def _has_secret(url: str, secret_params: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # malformed port or brackets: not a URL we can judge
        return False
    if password:
        return True
    pairs = parse_qsl(parts.query) + parse_qsl(parts.fragment)
    return any(value and _is_secret_name(name, secret_params) for name, value in pairs)


def _is_secret_name(name: str, secret_params: tuple[str, ...]) -> bool:
    name = name.lower().replace("-", "_")
    return name in secret_params or name.endswith(_SECRET_SUFFIXES)


def name_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive regex for a list of person names; ``None`` for an empty list.

    Names are whole words: ``Alice`` does not match inside ``Alicent``. Spaces inside a name
    match any run of whitespace. Scripts written without spaces (CJK, from U+2E80 on) get no
    word boundary on that side, since ``王小明`` sits directly between other characters.
    Longer names come first so ``Alice Example`` wins over ``Alice``.
    """
    if not names:
        return None
    alternatives = [_one_name(n) for n in sorted(set(names), key=lambda n: (-len(n), n))]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _one_name(name: str) -> str:
    body = r"\s+".join(re.escape(word) for word in name.split())
    before = r"(?<!\w)" if ord(name.strip()[0]) < 0x2E80 else ""
    after = r"(?!\w)" if ord(name.strip()[-1]) < 0x2E80 else ""
    return f"{before}{body}{after}"


def find_names(text: str, pattern: re.Pattern[str] | None) -> Iterator[Match]:
    """Person names from the user's list only (no guessing); value is the name case-folded."""
    if pattern is None:
        return
    for m in pattern.finditer(text):
        yield Match(m.start(), m.end(), "name", m.group(), " ".join(m.group().split()).casefold())
