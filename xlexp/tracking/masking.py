"""Mask secrets in configs before they leave the machine (W&B config, sweep storage URLs, logs).

``mask_secrets`` returns a copy: values of secret-looking keys become ``***`` and the password of
any URL with credentials (``postgresql://user:pw@host/db``) is replaced, wherever it sits.

A whole URL (what ``--storage`` takes) is split the way SQLAlchemy's ``make_url`` splits it: the
password is everything between the user's ``:`` and the ``@``, so ``/``, spaces, ``#`` or ``:`` in
it are masked too (SQLAlchemy accepts them unquoted), and up to the *last* ``@``: an unencoded ``@``
in a password (``p@ss@w0rd``) is masked whole, and :func:`url_hint` tells to percent-encode it. Inside free text (a log line, an error) a URL
has no clear end, so there the password stops at whitespace; passwords of URLs handed to
:func:`remember_url` (the sweep storage does) are masked in any text, spaces and all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Key names whose values are secrets, matched on the key's words (``wandb_api_key``, ``db-password``,
# ``HF_TOKEN``, ``clientSecret``). Words, not substrings: ``tokenizer`` or ``max_tokens`` are not secrets.
_SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "apikey", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "key")}
# a tokenizer's special tokens (``pad_token: <pad>``) are not secrets
_SPECIAL_TOKENS = {"pad", "bos", "eos", "unk", "cls", "sep", "mask", "special", "start", "end"}
# scheme://user:password@host... in free text (the user part may be empty: redis://:pw@host)
# the password runs to the *last* '@' before whitespace: an unencoded '@' in it (p@ss@w0rd) is masked whole
_URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^\s]*[^@\s]|)(?P<at>@)(?=[^@\s]*(?:\s|$))"
)
# a whole URL, with SQLAlchemy's grammar (sqlalchemy.engine.url._parse_url): name://user:password@...
# where the user has no ':' or '/' and the password runs to the '@' (it may hold '/', ' ', ':', '#')
# (to the last '@': a password with an unencoded '@' is masked whole, and :func:`url_hint` says to encode it)
_WHOLE_URL = re.compile(r"(?P<head>[\w+.\-]+://[^:/@]*:)(?P<pw>.*)(?P<at>@)")
_FRAGMENTS: set[str] = set()  # the tails of remembered passwords after an unencoded '@'
_KNOWN: set[str] = set()  # passwords of URLs this process was given (remember_url), as written and decoded
# ...?password=...&api_key=... in a URL's query string
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|api_?key|apikey|secret|access_?token)=)(?P<pw>[^&;#\s]+)",
    re.IGNORECASE,
)


def _words(key: str) -> list[str]:
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)  # camelCase -> camel_Case
    return [w for w in re.split(r"[_\-.\s]+", key.lower()) if w]


def is_secret_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    words = _words(key)
    if _SECRET_WORDS.intersection(words) or _SECRET_PAIRS.intersection(zip(words, words[1:])):
        return True
    return "token" in words and not _SPECIAL_TOKENS.intersection(words)


def _password_span(url: str) -> re.Match | None:
    m = _WHOLE_URL.match(url)
    return m if m and m["pw"] else None


def remember_url(url: str) -> None:
    """Mask this URL's password in any text from now on, wherever and however it shows up."""
    m = _password_span(url.strip())
    if m:
        from urllib.parse import unquote

        _KNOWN.update({m["pw"], unquote(m["pw"])})
        # an unencoded '@' makes a URL parser take the rest for the host, and drivers print that host
        # ("host 'ss@w0rd@db'"): every part after an '@' is masked wherever it appears
        parts = m["pw"].split("@")
        _FRAGMENTS.update(p for i in range(1, len(parts)) if len(p := "@".join(parts[i:])) >= 3)


def mask_url(text: str) -> str:
    """``postgresql://user:pw@host/db`` -> ``postgresql://user:***@host/db`` (and ``?password=...``);
    other text unchanged. Any password of a whole URL, and of remembered URLs anywhere."""
    stripped = text.strip()
    if stripped and "\n" not in stripped and _WHOLE_URL.match(stripped):  # one URL: mask as SQLAlchemy parses it
        m = _password_span(stripped)
        if m:
            text = text.replace(stripped, f"{m['head']}{MASK}{m['at']}{stripped[m.end() :]}", 1)
    for pw in sorted(_KNOWN, key=len, reverse=True):  # longest first: one password may contain another
        text = text.replace(f":{pw}@", f":{MASK}@")
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    for fragment in sorted(_FRAGMENTS, key=len, reverse=True):
        text = text.replace(fragment, MASK)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def url_hint(url: str) -> str:
    """A hint for an error about this URL: when its credentials hold an unencoded ``@`` (the URL
    parser splits at the first one, so the rest becomes a wrong host), say to percent-encode it."""
    m = _password_span(url.strip())
    if m and "@" in m["pw"]:
        return " (the password holds '@': percent-encode it as %40, e.g. with urllib.parse.quote(password, safe=''))"
    return ""


def mask_secrets(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, scalars) with secrets masked. Empty or null secret
    values are kept as they are, so a config still shows that no key was set."""
    if isinstance(obj, Mapping):  # dicts and OmegaConf DictConfigs alike
        return {
            k: (
                MASK
                if is_secret_key(k) and v not in (None, "") and not isinstance(v, (Mapping, list, tuple))
                else mask_secrets(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list) or type(obj).__name__ == "ListConfig":
        return [mask_secrets(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(mask_secrets(v) for v in obj)
    if isinstance(obj, str):
        return mask_url(obj)
    return obj
