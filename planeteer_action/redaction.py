"""Keeping secrets out of messages: known secret values masked, credentials cut out of URLs.

Only whole occurrences of values long enough to be secrets are masked: a one-character "key" replaced
inside every word would mangle the message ("e***ceeds") while protecting nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MIN_SECRET_LENGTH = 8
MASK = "***"
_TOKEN_CHARACTER = r"[A-Za-z0-9_\-]"


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every whole occurrence of each secret (of at least MIN_SECRET_LENGTH characters) masked."""
    values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not values:
        return text
    alternatives = "|".join(re.escape(value) for value in values)
    pattern = rf"(?<!{_TOKEN_CHARACTER})(?:{alternatives})(?!{_TOKEN_CHARACTER})"
    return re.sub(pattern, MASK, text)


def redact_url(url: str) -> str:
    """Where a URL points, without the credentials a user or signer may have put in it (userinfo, query).

    The fragment goes too; a query is shown as `?<redacted>`, so that one can tell it was there.
    """
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    return f"{bare}?<redacted>" if parts.query else bare
