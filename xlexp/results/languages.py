"""Language codes: normalised BCP-47 tags and display names via langcodes.

Tasks use their own codes (``eng``, ``swh_Latn``, ``zho_Hant``); records keep that code and the
normalised tag, so that ``sw``, ``swa`` and ``swh_Latn`` line up across tasks while scripts that
distinguish targets (``zho_Hans`` vs ``zho_Hant``) stay distinct.
"""

from __future__ import annotations

from functools import lru_cache

import langcodes


@lru_cache(maxsize=4096)
def normalize_tag(code: str) -> str:
    """Task code -> normalised BCP-47 tag: ISO 639-3 codes become their shortest form and
    individual languages their macrolanguage (``eng`` -> ``en``; ``sw``, ``swa``, ``swh`` -> ``sw``;
    ``cmn`` -> ``zh``); a script in the code is kept (``swh_Latn`` -> ``sw-Latn``, ``zho_Hant`` ->
    ``zh-Hant``); a corpus suffix that is not a script is dropped (``en_ewt`` -> ``en``)."""
    parts = code.replace("-", "_").split("_")
    keep = [parts[0]] + [p for p in parts[1:2] if len(p) == 4 and p.isalpha() and p[0].isupper()]  # Latn, Hans
    try:
        return langcodes.standardize_tag("-".join(keep), macro=True)
    except (ValueError, langcodes.tag_parser.LanguageTagError):
        return code


@lru_cache(maxsize=4096)
def display_name(code: str) -> str:
    """Human-readable name for tables and plots; falls back to the code itself."""
    try:
        return langcodes.Language.get(normalize_tag(code)).display_name()
    except Exception:  # unknown tags or missing language_data: a name is a nicety, never fatal
        return code
