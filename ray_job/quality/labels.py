"""A paper's label, for judging its neighbours: which field of a record holds one, and how a
value of that field becomes one label.

Where the job names no field (`--label-field`), the input's own, in this order:

* `categories` (the arXiv snapshot: "hep-ph astro-ph.CO"): the archive of the first category,
  "hep-ph"; "math.CO" is "math";
* `s2fieldsofstudy` (Semantic Scholar's bulk files), `s2FieldsOfStudy` / `fieldsOfStudy` (its
  API): a list of names, or of {"category": ..., "source": ...}: the first one.

A field the user names gives its value as it is (a string), or the first of a list. A record
without a usable value has no label (None): it is left out of the label measures, never
counted as a label of its own.
"""
from __future__ import annotations

ARXIV_FIELD = "categories"
S2_FIELDS = ("s2fieldsofstudy", "s2FieldsOfStudy", "fieldsOfStudy")   # bulk files, the API
KNOWN_FIELDS = (ARXIV_FIELD, *S2_FIELDS)
MAX_LABEL_CHARS = 200


def archive_of(categories) -> str | None:
    """"hep-ph astro-ph.CO" -> "hep-ph"; "math.CO" -> "math"."""
    if not isinstance(categories, str) or not categories.split():
        return None
    return categories.split()[0].split(",")[0].split(".")[0] or None


def first_of(value) -> str | None:
    """A string as it is (stripped); the first usable item of a list; a Semantic Scholar
    {"category": name} item's name."""
    if isinstance(value, dict):
        value = value.get("category")
    if isinstance(value, list | tuple):
        return next((found for found in map(first_of, value) if found), None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())[:MAX_LABEL_CHARS]
    return None


def label_of(record: dict, field: str) -> str | None:
    """The label of `record` from `field` (None: it has none)."""
    value = record.get(field)
    return archive_of(value) if field == ARXIV_FIELD else first_of(value)


def candidate_fields(named: str | None) -> tuple[str, ...]:
    """The fields to read for labels: the one named, else every known one."""
    return (named,) if named else KNOWN_FIELDS


def chosen_field(records_seen: dict[str, int], named: str | None) -> str | None:
    """Of the fields read, the one that labels: the named one, else the first known field
    that gave any label (`records_seen`: labels found per field)."""
    if named:
        return named
    return next((f for f in KNOWN_FIELDS if records_seen.get(f)), None)
