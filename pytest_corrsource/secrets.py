"""Secrets of the pytest process: which variables hold them, which values smuggle them, and
how every copy of them (also encoded) is taken out of the text the plugin writes.

Stage: below the execution layer and the reports; standard library only.

* :func:`looks_secret` judges a variable *name* by its word parts (``CI_JOB_JWT``, ``GH_PAT``,
  ``myServiceApiToken``), so ``PATH`` or ``KEYBOARD_LAYOUT`` are not mistaken for secrets.
* :func:`embedded_credential` judges a *value*: URL user info, token-like query parameters and
  a proxy address with ``user:password@`` but no scheme.
* :func:`redact` replaces secret values and their base64 (standard and URL-safe, at each of
  the three byte alignments inside a longer encoded string), hex, URL-encoded and reversed
  forms by ``***``.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import urllib.parse
from collections.abc import Mapping

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "credential_parts",
    "embedded_credential",
    "encoded_forms",
    "looks_secret",
    "redact",
    "secret_values",
    "without_credentials",
]

REDACTED = "***"

#: Values shorter than this are not redacted: replacing every "true" or "default" (of a
#: ``GPG_KEY=default``) in a log would hide the log, not a secret. Real tokens are far longer.
MIN_SECRET_LENGTH = 8

# A name part equal to one of these marks a secret.
_SECRET_PARTS = frozenset(
    {
        "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd",
        "passphrase", "key", "keys", "apikey", "jwt", "pat", "credential", "credentials",
        "creds", "auth", "authorization", "session", "cookie", "private", "signature", "sig",
    }
)  # fmt: skip
# A name part ending with one of these is a compound of it (``AUTHTOKEN``, ``APIKEY``,
# ``ACCESSKEY``); one starting with a long one is a form of it (``PASSWORD2``, ``SECRETS``).
# Short words (key, pat, jwt, auth) and ``token`` are not prefixes: ``KEYBOARD``, ``PATH``,
# ``PATCH``, ``AUTHOR``, ``TOKENIZERS`` are not secrets.
_SECRET_SUFFIXES_LONG = ("token", "secret", "password", "passwd", "credential", "apikey")
_SECRET_PREFIXES = ("secret", "password", "passwd", "credential")
_SECRET_SUFFIXES = ("key", "jwt", "pat")

# Splits a name into words: separators, then camelCase and digit boundaries.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SEPARATOR = re.compile(r"[^A-Za-z0-9]+")


def _parts(name: str) -> list[str]:
    words: list[str] = []
    for chunk in _SEPARATOR.split(name):
        words.extend(w.lower() for w in _WORD.findall(chunk))
    return words


def looks_secret(name: str) -> bool:
    """Whether an environment variable or query parameter *name* names a secret."""
    for part in _parts(name):
        if part in _SECRET_PARTS:
            return True
        if part.startswith(_SECRET_PREFIXES) or part.endswith(_SECRET_SUFFIXES_LONG):
            return True
        # ``APIKEY``, ``ACCESSKEY``, ``CIJOBJWT``, ``GHPAT``: a longer word ending in a short one.
        # Only whole-word endings of 4+ letter parts whose stem is itself a known prefix.
        if part.endswith(_SECRET_SUFFIXES) and part[:-3] in {"api", "access", "private", "gh"}:
            return True
    return False


# ``scheme://userinfo@`` anywhere in a value (several URLs may be space-separated).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@?#]*)@")
# ``user:password@host`` without a scheme, as proxies are often written.
_BARE_USERINFO = re.compile(r"(?:^|[\s,;])(?P<userinfo>[^\s/@:,;]+:[^\s/@,;]+)@[^\s/@,;]+")
# A query (or fragment) parameter: name=value.
_QUERY_PARAMETER = re.compile(r"[?&;#](?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&;#\s]*)")
# Query parameters that carry a credential although their name says nothing of it.
_CREDENTIAL_PARAMETERS = frozenset({"sig", "signature", "x-amz-signature", "x-amz-credential",
                                    "x-goog-signature", "x-goog-credential", "code"})  # fmt: skip


def _secret_parameter(name: str) -> bool:
    lower = name.lower()
    return lower in _CREDENTIAL_PARAMETERS or looks_secret(lower)


def credential_parts(value: str) -> list[tuple[str, str]]:
    """``(description, secret text)`` for every credential embedded in *value*."""
    found: list[tuple[str, str]] = []
    for match in _URL_USERINFO.finditer(value):
        userinfo = match.group("userinfo")
        if userinfo:
            found.append(("user info in a URL (scheme://user:token@host)", userinfo))
    for match in _BARE_USERINFO.finditer(value):
        if "://" not in value[max(0, match.start() - 3) : match.start("userinfo")]:
            found.append(("user:password@ in an address without a scheme", match.group("userinfo")))
    for match in _QUERY_PARAMETER.finditer(value):
        if _secret_parameter(match.group("name")) and match.group("value"):
            found.append((f"query parameter `{match.group('name')}`", match.group("value")))
    return found


def embedded_credential(value: str) -> str | None:
    """What credential *value* carries (for a warning; never the credential), or ``None``."""
    parts = credential_parts(value)
    return parts[0][0] if parts else None


def secret_values(env: Mapping[str, str]) -> set[str]:
    """The values to hide: those of secret-looking names, and credentials inside any value."""
    values: set[str] = set()
    for name, value in env.items():
        if looks_secret(name):
            values.add(value)
        elif "@" in value or "=" in value:
            values.update(part for _, part in credential_parts(value))
            # A password alone (user:password) must go even when the user name is public.
            values.update(
                part.split(":", 1)[1] for _, part in credential_parts(value) if ":" in part
            )
    return {v for v in values if len(v) >= MIN_SECRET_LENGTH}


def _base64_cores(data: bytes, alphabet: bytes | None) -> list[str]:
    """The parts of a base64 text that encode *data* whatever surrounds it.

    Inside a longer encoded string, *data* starts at one of three byte alignments. For each,
    encode it behind that many zero bytes and keep only the characters whose 6 bits all come
    from *data*: they appear verbatim in any base64 text containing *data* at that alignment.
    """
    cores = []
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + data, altchars=alphabet).decode("ascii")
        first = -(-8 * lead // 6)  # ceil: characters touching the leading zero bytes
        last = 8 * (lead + len(data)) // 6  # characters ending within *data*
        cores.append(encoded[first:last])
    return cores


def encoded_forms(secret: str) -> set[str]:
    """*secret* and the encodings of it a step could print to get it past a plain redaction."""
    data = secret.encode("utf-8")
    forms = {secret, secret[::-1], data.hex(), data.hex().upper()}
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret, safe=""))
    for alphabet in (None, b"-_"):
        forms.update(_base64_cores(data, alphabet))
    # Padding-free full encodings are covered by the aligned cores; keep only forms long enough
    # not to match by chance (a 6-character secret gives 8-character encodings).
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


@functools.lru_cache(maxsize=8)  # one environment per session: computed once
def _redaction(
    environment: frozenset[tuple[str, str]],
) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """Every form to hide, and one pattern replacing them (longest first, so that a form
    containing another is replaced whole)."""
    forms: set[str] = set()
    for secret in secret_values(dict(environment)):
        forms |= encoded_forms(secret)
    if not forms:
        return (), None
    ordered = tuple(sorted(forms, key=len, reverse=True))
    return ordered, re.compile("|".join(re.escape(f) for f in ordered))


# The password part of ``scheme://user:password@`` and secret query values in free text.
_USERINFO_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")


def _redact_query(match: re.Match[str]) -> str:
    if _secret_parameter(match.group("name")) and match.group("value"):
        return match.group(0)[: match.start("value") - match.start(0)] + REDACTED
    return match.group(0)


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """*text* without the secrets of *env* (default ``os.environ``), in any of their
    :func:`encoded_forms`, and without URL passwords or secret query values it names itself."""
    source: Mapping[str, str] = os.environ if env is None else env
    forms, pattern = _redaction(frozenset(source.items()))
    # Substring tests first: most text holds no secret, and `in` is much faster than the
    # alternation over every form.
    if pattern is not None and any(form in text for form in forms):
        text = pattern.sub(REDACTED, text)
    if "@" in text:
        text = _USERINFO_PASSWORD.sub(rf"\1{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_redact_query, text)
    return text


def without_credentials(candidates: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split variables meant for a step into those safe to pass and warnings for the rest.

    A variable is dropped when its name looks secret or its value embeds a credential. Each
    warning names the variable and why, never the value: it is meant for ``Finding.warnings``.
    """
    passed: dict[str, str] = {}
    warnings: list[str] = []
    for name, value in candidates.items():
        if looks_secret(name):
            warnings.append(f"{name} was not passed to the step: its name marks a secret")
            continue
        credential = embedded_credential(value)
        if credential is not None:
            warnings.append(f"{name} was not passed to the step: its value carries {credential}")
            continue
        passed[name] = value
    return passed, warnings
