"""The auth domain's rules: the identity claims a login brings, checked whole before anything
is stored (PRODUCT §5), and the addresses a super-admin grant may name.

A claim that does not fit is refused, never cut: cutting `"x…@acme.example"@attacker.example`
to the column's width once left an Acme address, and its owner joined Acme. So every value
either fits its column exactly as the provider sent it, or the login fails with a sentence
naming the claim. Strings that Postgres cannot store (NUL, lone surrogates) are refused here
too, so a login never ends in the database's 422.

E-mail: a plain addr-spec of ASCII characters, `local@domain` with exactly one `@`, the local
part a dot-atom (no quoted strings, no comments), the domain host names of at least two
labels (no address literals); at most 64 characters before the `@` and 254 in all, the
longest path RFC 5321 lets through. Internationalized addresses are refused rather than
case-folded, since Unicode lower-casing can turn one domain into another (`K`, U+212A, lowers
to `k`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from api.platform.http.errors import InvalidInput

EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
NAME_MAX = 200
"""`users.name`, `given_name` and `family_name` are varchar(200)."""
SUBJECT_MAX = 255
"""`users.oidc_subject` is varchar(255), the length OpenID Connect Core allows a `sub`."""
NAME_CLAIMS = ("name", "given_name", "family_name")

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+", re.ASCII)


class ClaimRefused(Exception):
    """A claim that cannot be stored as sent; `reason` is a stable machine-readable code."""

    def __init__(self, claim: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.claim, self.reason, self.detail = claim, reason, detail


@dataclass(frozen=True, slots=True)
class Identity:
    """What provisioning stores about a person, each value exactly as the provider said it."""

    subject: str
    email: str | None
    """Lower-cased; `None` unless the provider says it is verified (an unverified address
    is dropped unchecked: nothing stores or believes it)."""
    name: str
    given_name: str
    family_name: str


def _malformed(claim: str, why: str) -> ClaimRefused:
    return ClaimRefused(claim, "claim_malformed", f"The provider's `{claim}` claim {why}")


def _too_long(claim: str, limit: int) -> ClaimRefused:
    return ClaimRefused(
        claim, "claim_too_long", f"The provider's `{claim}` claim is longer than {limit} characters"
    )


def storable_text(value: str) -> bool:
    """No control characters (NUL included) and no lone surrogates: what a text column and a
    log line hold as they are."""
    return value.isprintable() or not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def _optional_text(claims: dict[str, Any], claim: str, limit: int) -> str:
    value = claims.get(claim)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(claim, "is not a string")
    if not storable_text(value):
        raise _malformed(claim, "contains control characters")
    value = value.strip()
    if len(value) > limit:
        raise _too_long(claim, limit)
    return value


def _subject(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _malformed("sub", "is missing or not a string")
    if not storable_text(subject):
        raise _malformed("sub", "contains control characters")
    if len(subject) > SUBJECT_MAX:
        raise _too_long("sub", SUBJECT_MAX)
    return subject


def checked_email(value: str) -> str:
    """`value` lower-cased if it is a plain addr-spec within the limits, else `ClaimRefused`."""
    if not storable_text(value):
        raise _malformed("email", "contains control characters")
    if len(value) > EMAIL_MAX:
        raise _too_long("email", EMAIL_MAX)
    local, at, domain = value.partition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise _malformed("email", "is not a plain address like name@example.com")
    if len(local) > EMAIL_LOCAL_MAX:
        raise _too_long("email", EMAIL_LOCAL_MAX)  # before the `@`
    return value.lower()


def _email(claims: dict[str, Any]) -> str | None:
    """The verified address, checked whole. An unverified one is never stored nor trusted,
    so it is dropped whatever its shape (oidc-provider-mock sends the typed subject)."""
    value = claims.get("email")
    if claims.get("email_verified") is not True or value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed("email", "is not a string")
    return checked_email(value)


def read_identity(claims: dict[str, Any]) -> Identity:
    """The person the verified claims describe; `ClaimRefused` for the first claim that
    cannot be stored whole."""
    subject = _subject(claims)
    email = _email(claims)
    names = {claim: _optional_text(claims, claim, NAME_MAX) for claim in NAME_CLAIMS}
    return Identity(subject, email, names["name"], names["given_name"], names["family_name"])


def grantable_email(value: str) -> str:
    """The address a super-admin grant names, lower-cased: one a verified login can bring (the
    `email` claim's rule), since a grant reaches only a verified address; else InvalidInput."""
    try:
        return checked_email(value.strip())
    except ClaimRefused:
        raise InvalidInput(
            f"{value!r} is not a plain e-mail address like name@example.com",
            extra={"field": "email"},
        ) from None
