"""Configuration files for tests that read one from disk (``newsbot`` run
as a process, reloading): the same dict ``parse_config`` takes, as TOML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_text(data: dict[str, Any]) -> str:
    """Tables of plain keys; lists of tables (categories, feeds) as [[name]]."""
    lines: list[str] = []
    for name, section in data.items():
        if isinstance(section, list):
            for entry in section:
                lines.append(f"[[{name}]]")
                lines += [f"{key} = {_value(value)}" for key, value in entry.items()]
        else:
            lines.append(f"[{name}]")
            lines += [f"{key} = {_value(value)}" for key, value in section.items()]
    return "\n".join(lines) + "\n"


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(toml_text(data))
    return path
