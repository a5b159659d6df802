"""Language codes and metadata: normalised BCP-47 tags, display names, script and family.

Tasks use their own codes (``eng``, ``swh_Latn``, ``zho_Hant``); records keep that code and the
normalised tag, so that ``sw``, ``swa`` and ``swh_Latn`` line up across tasks while scripts that
distinguish targets (``zho_Hans`` vs ``zho_Hant``) stay distinct.

Script comes from the task code when it carries one (``zho_Hans``) and otherwise from CLDR's
likely-subtags data in langcodes (``eng`` -> Latn). langcodes has no families, so ``FAMILIES`` is a
short hand-made table of top-level families (Glottolog's names) for the languages of the shipped
tasks and other widely studied ones; a language that is not in it has no family (blank), rather
than a guess. Reports, tables and figures group and label languages with it.
"""

from __future__ import annotations

from dataclasses import dataclass
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


_AN, _IE, _AA, _AC = "Austronesian", "Indo-European", "Afro-Asiatic", "Atlantic-Congo"
_FAMILY_GROUPS: dict[str, str] = {
    _AN: (
        "ace ban bbc bjn bug ind jav mad min nij sun zsm msa tgl fil ceb ilo war pag plt mlg mri smo fij tet haw "
        "cha dtp kzj max pam"
    ),
    _IE: (
        "eng deu nld afr dan swe nob nno nor isl fao ltz ydd yid fra spa por ita cat glg oci ron lat scn srd "
        "lij lmo fur vec ast rus ukr bel pol ces slk slv hrv srp bos bul mkd lit lvs lav ltg ell gle gla cym "
        "ang cor csb dsb hsb fry gsw swg nds lim szl orv pms kur "
        "bre hye sqi als hin urd ben mar guj pan pnb asm ory npi nep sin snd kas mai bho mag awa hne san "
        "pes fas prs tgk kmr ckb pbt pus oss"
    ),
    _AA: "arb ara acm acq aeb ajp apc ars ary arq arz heb amh tir som hau mlt kab tzm taq gaz orm ber",
    "Sino-Tibetan": "zho cmn yue wuu mya bod dzo mni kac lus",
    "Turkic": "tur azj azb aze kaz uzn uzb kir tat bak uig tuk crh chv",
    "Dravidian": "tam tel kan mal",
    "Uralic": "fin est hun sme mhr",
    "Austroasiatic": "vie khm sat",
    "Tai-Kadai": "tha lao shn",
    "Japonic": "jpn",
    "Koreanic": "kor",
    "Kartvelian": "kat",
    "Mande": "bam dyu nqo",
    _AC: (
        "swh swa zul xho kin run lug lin sna nya tsn sot nso ssw tso ven kik kam lua kon kmb umb bem "
        "yor ibo ewe fon twi aka mos wol fuv ful bbj cjk kbp sag tum"
    ),
    "Nilotic": "luo dik nus",
    "Mongolic-Khitan": "mon khk",
    "Saharan": "knc",
    "Aymaran": "ayr",
    "Quechuan": "quy",
    "Tupian": "grn",
    "Basque": "eus",  # an isolate: Glottolog's family of one
    # not genealogical families, but how Glottolog groups them (rather than a blank)
    "Creole": "pcm hat kea pap tpi cbk",
    "Artificial Language": "epo ido ile ina lfn nov tzl",
}
FAMILIES: dict[str, str] = {code: fam for fam, codes in _FAMILY_GROUPS.items() for code in codes.split()}


@dataclass(frozen=True)
class LanguageInfo:
    code: str  # the task's code (eng, zho_Hans)
    tag: str  # normalised BCP-47 tag
    name: str
    script: str  # ISO 15924 code, '' when unknown
    family: str  # top-level family, '' when unknown


def _base(code: str) -> str:
    return code.split("_")[0].split("-")[0].lower()


@lru_cache(maxsize=4096)
def script_of(code: str) -> str:
    """ISO 15924 script: the task code's own (``ace_Arab`` -> Arab), else CLDR's likely script."""
    parts = code.replace("-", "_").split("_")
    if len(parts) > 1 and len(parts[1]) == 4 and parts[1].isalpha():
        return parts[1].title()
    try:
        lang = langcodes.Language.get(normalize_tag(code))
        if not lang.is_valid() or lang.language in (None, "und") or not langcodes.tag_is_valid(lang.language):
            return ""
        return lang.script or lang.maximize().script or ""
    except Exception:  # an unknown code has no script, never an error
        return ""


@lru_cache(maxsize=4096)
def family_of(code: str) -> str:
    """Top-level family from the table, by the code's ISO 639-3 form (``en``, ``en_ewt`` -> ``eng``)."""
    base = _base(code)
    if base in FAMILIES:
        return FAMILIES[base]
    try:
        return FAMILIES.get(langcodes.Language.get(base).to_alpha3(), "")
    except Exception:  # not a language code langcodes knows: no family rather than a guess
        return ""


@lru_cache(maxsize=4096)
def info(code: str) -> LanguageInfo:
    return LanguageInfo(
        code=code, tag=normalize_tag(code), name=display_name(code), script=script_of(code), family=family_of(code)
    )


def group_order(codes: list[str]) -> list[str]:
    """Codes grouped by family, then script, then by code; languages without a family come last.
    Heatmap rows/columns use it, so related languages sit together and every matrix of an
    experiment has the same order."""
    return sorted(codes, key=lambda c: (info(c).family == "", info(c).family, info(c).script, c))
