"""Typed flow parameters, so the Prefect UI renders a validated form (Run -> Custom run).

- :data:`ProfileName`: a string whose JSON schema is an ``enum`` of the profiles shipped in
  ``profiles/`` (read at import time), so the UI shows a choice. Python callers (the ``movierec``
  CLI) may also pass a path to a ``.toml`` file; anything else is rejected with the list of names.
- :data:`Overrides`: ``{"section.key": "value"}`` (values read as TOML, as with ``--set``), shown
  as key/value pairs whose keys are a choice of the real setting names (:data:`SETTING_NAMES`, the
  profile model's ``section.key`` fields: the schema's ``propertyNames`` enum, so the server
  refuses an unknown key when the run is submitted, and validation names the nearest real ones).
  Empty by default (no ``null`` toggle). The CLI's list form ``["section.key=value", ...]`` is
  accepted and converted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from tasks.profile import available_profiles, setting_names

__all__ = ["PROFILE_NAMES", "SETTING_NAMES", "Overrides", "ProfileName", "overrides_as_list"]

#: The profiles a deployment run can choose (the files in profiles/ when this module was imported).
PROFILE_NAMES: tuple[str, ...] = tuple(available_profiles())
#: The settings an override may name (``section.key``).
SETTING_NAMES: tuple[str, ...] = tuple(setting_names())


def _check_profile(value: str) -> str:
    if value in PROFILE_NAMES or (value.endswith(".toml") and Path(value).is_file()):
        return value
    raise ValueError(
        f"unknown profile {value!r}: choose one of {', '.join(PROFILE_NAMES)} (files in profiles/) "
        "or give the path of an existing .toml file"
    )


def _toml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))  # a JSON array of numbers/strings is a TOML array
    return str(value)


def _as_mapping(value: Any) -> Any:
    """``["a.b=1", ...]`` -> ``{"a.b": "1"}``; non-string values of a mapping -> TOML text."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        pairs = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {item!r}: expected 'section.key=value'")
            key, text = item.split("=", 1)
            pairs[key.strip()] = text
        return pairs
    if isinstance(value, dict):
        return {str(k): _toml_text(v) for k, v in value.items()}
    return value


def _check_keys(value: dict[str, str]) -> dict[str, str]:
    import difflib

    for key in value:
        if key in SETTING_NAMES:
            continue
        if "." not in key:
            raise ValueError(f"override key {key!r}: expected 'section.key', e.g. 'eval.batch_size'")
        near = difflib.get_close_matches(key, SETTING_NAMES, n=3, cutoff=0.6)
        raise ValueError(
            f"override key {key!r} is not a setting"
            + (f"; did you mean {', '.join(near)}?" if near else "")
            + " (the settings are the section.key names of a profile, e.g. 'eval.batch_size')"
        )
    return value


ProfileName = Annotated[
    str,
    AfterValidator(_check_profile),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(PROFILE_NAMES),
            "title": "profile",
            "description": "run profile (a file in profiles/)",
        }
    ),
]

_OVERRIDES_HELP = (
    "profile settings to override: 'section.key' -> value read as TOML "
    "(e.g. 'eval.batch_size' -> '2000', 'collab.model' -> 'puresvd')"
)
Overrides = Annotated[
    dict[str, str],
    BeforeValidator(_as_mapping),
    AfterValidator(_check_keys),
    WithJsonSchema(
        {
            "type": "object",
            "title": "overrides",
            "description": _OVERRIDES_HELP,
            "propertyNames": {"enum": list(SETTING_NAMES)},
            "additionalProperties": {"type": "string"},
            "default": {},
        }
    ),
    Field(description=_OVERRIDES_HELP),
]


def overrides_as_list(overrides: dict[str, str] | list[str] | None) -> list[str]:
    """``{"a.b": "1"}`` -> ``["a.b=1"]``: the form :func:`tasks.profile.load_profile` takes."""
    return [f"{key}={text}" for key, text in _as_mapping(overrides).items()]
