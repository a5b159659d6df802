"""URIEL distances between languages, read offline from the database that ``urielplus`` ships.

Why urielplus (1.3.2, the ``predict`` extra) and not lang2vec 1.1.2: both wheels carry the same
URIEL arrays (7,970 ISO 639-3 codes: every code of our tasks maps, except Western Armenian
``hyw``), but lang2vec imports ``pkg_resources`` at import time, which current setuptools no
longer ships, so it does not import here; urielplus imports, is maintained, and adds URIEL's
script vectors. We read the four ``original_uriel/*.npz`` arrays straight from the installed
package (``URIELPlus()`` copies them into its own package folder on first use and logs at INFO,
which a read-only install would refuse) and compute its ``new_distance`` for every pair at once:
per category, the union ('U', URIEL+'s default) of the sources' values, then the angular distance
``2·arccos(cos θ)/π`` over the features both languages have (tests check a few pairs against
``URIELPlus().new_distance``). A pair without shared features, or a language URIEL does not hold,
gets NaN: the caller reports the feature as missing instead of failing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import langcodes
import numpy as np

from xlexp.errors import XlexpError

# distance name -> (npz file, feature-name prefix; '' = every feature of the file)
CATEGORIES: dict[str, tuple[str, str]] = {
    "genetic": ("family_features.npz", ""),
    "geographic": ("geocoord_features.npz", ""),
    "syntactic": ("features.npz", "S_"),
    "phonological": ("features.npz", "P_"),
    "inventory": ("features.npz", "INV_"),
    "script": ("script_features.npz", ""),
}
EXTRA = "predict"


@dataclass(frozen=True)
class Database:
    langs: dict[str, dict[str, int]]  # category -> ISO 639-3 code -> row (each file has its own order)
    data: dict[str, np.ndarray]  # category -> languages x features x sources (-1 = unknown)

    def held(self) -> set[str]:
        return set().union(*(set(m) for m in self.langs.values()))

    def vectors(self, name: str, rows: list[int]) -> np.ndarray:
        """Aggregated vectors of ``rows`` (-1: a language not held -> all NaN), NaN = unknown."""
        data = self.data[name]
        out = np.full((len(rows), data.shape[1]), np.nan)
        ok = [i for i, r in enumerate(rows) if r >= 0]
        if ok:
            sub = data[[rows[i] for i in ok]].astype(np.float64)
            agg = np.where(sub >= 0, sub, np.nan)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: unknown stays NaN
                # union over sources (URIEL+'s 'U' aggregation; geography: the mean of known values)
                out[ok] = np.nanmean(agg, axis=2) if name == "geographic" else np.nanmax(agg, axis=2)
        return out


def _folder():
    try:
        return resources.files("urielplus") / "database" / "original_uriel"
    except ModuleNotFoundError as e:
        raise XlexpError(f"URIEL features need the urielplus package: pip install 'xlexp[{EXTRA}]'") from e


@lru_cache(maxsize=1)
def database() -> Database:
    """The arrays, loaded once per process (feature columns of each category cut out, not aggregated:
    only the languages a matrix needs are, in ``Database.vectors``)."""
    folder = _folder()
    raw: dict[str, dict] = {}
    langs: dict[str, dict[str, int]] = {}
    data: dict[str, np.ndarray] = {}
    for name, (file, prefix) in CATEGORIES.items():
        if file not in raw:
            with resources.as_file(folder / file) as path, np.load(path, allow_pickle=True) as npz:
                raw[file] = {k: npz[k] for k in ("langs", "feats", "data")}
        a = raw[file]
        langs[name] = {str(code): i for i, code in enumerate(a["langs"])}
        cols = [i for i, f in enumerate(a["feats"]) if str(f).startswith(prefix)]
        data[name] = a["data"] if len(cols) == a["data"].shape[1] else a["data"][:, cols, :]
    return Database(langs, data)


@lru_cache(maxsize=4096)
def uriel_code(code: str) -> str | None:
    """Task code (``en``, ``en_ewt``, ``swh_Latn``, ``eng``) -> the ISO 639-3 code URIEL holds, or None."""
    base = code.replace("-", "_").split("_")[0].lower()
    held = database().held()
    candidates = [base]
    try:
        lang = langcodes.Language.get(base)
        candidates += [lang.to_alpha3(), lang.to_alpha3(variant="B")]
    except (LookupError, ValueError, langcodes.tag_parser.LanguageTagError):
        pass
    return next((c for c in candidates if c and c in held), None)


def distances(sources: list[str], targets: list[str], categories: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per category, a sources x targets matrix of URIEL angular distances (NaN where unknown)."""
    db = database()
    codes_s, codes_t = [uriel_code(c) or "" for c in sources], [uriel_code(c) or "" for c in targets]
    out = {}
    for name in categories or list(CATEGORIES):
        index = db.langs[name]
        a = db.vectors(name, [index.get(c, -1) for c in codes_s])
        b = db.vectors(name, [index.get(c, -1) for c in codes_t])
        ka, kb = ~np.isnan(a), ~np.isnan(b)
        a0, b0 = np.nan_to_num(a), np.nan_to_num(b)
        dot = a0 @ b0.T
        na = (a0**2) @ kb.T.astype(float)
        nb = ka.astype(float) @ (b0**2).T
        shared = ka.astype(float) @ kb.T.astype(float)
        # URIEL+ treats an all-zero vector as a tiny constant one (cos = 0 with a non-zero vector)
        with np.errstate(all="ignore"):
            cos = np.where((na > 0) & (nb > 0), dot / np.sqrt(na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
        d = 2 * np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi
        d[shared == 0] = np.nan
        out[name] = d
    return out
