"""Free text that people read: admins (reasons) and other players (chat).

Control characters (C0, DEL, C1: NUL, ESC, CR/LF, ...) and the bidirectional
embedding, override and isolate marks (U+202A-U+202E, U+2066-U+2069) are
refused in such text: they can forge log lines, break a back-office page or
make a text read differently from what it holds.
"""

from __future__ import annotations

import re

# A character class body, valid in Python and ECMAScript regexes alike (so the
# OpenAPI document can carry the same rule).
FORBIDDEN_CHARACTERS = "\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069"
# "Only allowed characters", anchored, for a JSON Schema / OpenAPI `pattern`.
READABLE_PATTERN = f"^[^{FORBIDDEN_CHARACTERS}]*$"

_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARACTERS}]")


def is_readable(text: str) -> bool:
    """True when `text` holds no control or bidi-control character."""
    return _FORBIDDEN.search(text) is None
