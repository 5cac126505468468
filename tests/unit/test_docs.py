"""The docs stay true to the repository: every relative link in README.md, SECURITY.md and
docs/*.md resolves (to a file, and to a heading where a #anchor is given), and every environment
variable chalicelib/settings.py reads is documented in docs/configuration.md."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from chalicelib import settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub("", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped,
    spaces to hyphens (underscores and hyphens kept)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if SCHEME.match(target) or target.startswith("//"):
                continue  # an absolute URL: not ours to check offline
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}: {target}"
            if not resolved.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
                problems.append(f"{where} (no heading #{anchor} in {resolved.name})")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    assert broken_links(path) == []


def test_the_link_check_catches_a_broken_file_and_anchor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Real heading: `from_env()`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#real-heading-from_env) [ok2](other.md#twice-1) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad](other.md#nope) `[code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
    )
    assert broken_links(page) == ["page.md:2: missing.md (no such file)", "page.md:2: other.md#nope (no heading #nope in other.md)"]


def test_readme_is_a_short_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "```mermaid" in readme
    assert "make run" in readme and "make test" in readme


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up in it. Required settings get a
    value (distinct per name, so the buckets differ); everything else is unset."""

    def __init__(self) -> None:
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        if name in {"UPLOAD_BUCKET", "PROCESSED_BUCKET", "CATALOG_TABLE", "EVENTS_TOPIC"}:
            return name.lower().replace("_", "-")
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def variables_read() -> set[str]:
    """Every name `Settings.from_env()` and `LocalSettings.from_env()` read, observed at run
    time, plus every name the source hands to an env lookup (for branches not taken here)."""
    env = RecordingEnv()
    settings.Settings.from_env(env)
    settings.LocalSettings.from_env(env)
    source = Path(settings.__file__).read_text(encoding="utf-8")
    literal = r"[\"']([A-Z][A-Z0-9_]+)[\"']"
    in_source = re.findall(rf"env(?:\.get\(|\[|, ){literal}", source)
    return env.read | set(in_source) | set(settings.LOCAL_OVERRIDABLE)


def test_variables_are_found_in_settings() -> None:
    found = variables_read()
    # A sample of each kind of lookup, so a parser that finds nothing cannot pass.
    assert {"UPLOAD_BUCKET", "MAX_WORKERS", "AWS_DEFAULT_REGION", "CDN_DOMAIN", "LOCAL_AWS_PORT", "INBOX"} <= found


def test_every_environment_variable_is_documented() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", CONFIGURATION.read_text(encoding="utf-8")))
    missing = sorted(variables_read() - documented)
    assert missing == [], f"chalicelib/settings.py reads {missing}: document them in docs/configuration.md"
