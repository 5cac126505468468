"""`make bench` keeps docs/performance.md's latest-run block current: the tables of the run
just made replace the previous ones between two markers (the history stays in bench/results/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- make bench: latest run, written by bench/docs.py (edit the code, not this block) -->"
END = "<!-- end of make bench's latest run -->"


class MarkersMissing(ValueError):
    """The document has no block to replace."""


def replace_block(document: str, header: str, table: str) -> str:
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise MarkersMissing(f"the markers {BEGIN!r} and {END!r} are missing")
    block = f"{BEGIN}\n{header.strip()}\n\n```\n{table.strip()}\n```\n"
    return document[:start] + block + document[end:]


def update(path: Path, header: str, table: str) -> None:
    path.write_text(replace_block(path.read_text(encoding="utf-8"), header, table), encoding="utf-8")


def header(result: dict[str, Any]) -> str:
    """The line above the tables: when, on what, how."""
    machine, settings = result["machine"], result["settings"]
    load = f"load average {machine['load_average_before'][0]:.2f} before the run, {machine['load_average_after'][0]:.2f} after"
    return (
        f"Run {result['created'].replace('T', ' ')[:16]} UTC on {machine['cpus']} CPUs ({machine['platform']}), {load}; "
        f"Python {machine['python']}, Pillow {machine['pillow']}, libvips {machine['libvips'] or '-'}. "
        f"`make bench`: {settings['repeats']} repeats (the older code {min(settings['naive_repeats'], settings['repeats'])}), "
        f"threads {', '.join(map(str, settings['threads']))}, {len(settings['photos'])} photos."
    )
