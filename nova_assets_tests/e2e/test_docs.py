"""The README as a newcomer meets it on the repository's front page: short, its two commands
first, and every relative link leading to a file that exists (and to a heading of it, where the
link names one). The pages under docs/ are checked by `mkdocs build --strict` in CI."""

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from nova_assets.lib.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
MAX_LINES = 200

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(markdown: str) -> str:
    """The text without fenced blocks and code spans, where brackets are no links."""
    return _CODE.sub("", _FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    return _LINK.findall(prose(markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (and MkDocs' for the headings these docs use): the text as
    shown, lowercased, without punctuation, spaces turned to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFC", text.replace("`", "").replace("*", "")).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def test_the_readme_is_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_the_readme_starts_with_the_two_commands():
    """test_readme.py runs the first line of the first bash block; the second is the tests."""
    block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands[:2] == ["uv run dg launch --job all_assets", "uv run pytest"], commands


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` that lead to no file, or to no heading of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    broken = []
    for link in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
            continue
        target, _, anchor = unquote(link).partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no file {file}")
        elif (
            anchor
            and file.suffix == ".md"
            and anchor not in anchors(file.read_text(encoding="utf-8"))
        ):
            broken.append(f"{link}: no heading #{anchor} in {file.name}")
    return broken


def test_every_relative_link_of_the_readme_leads_somewhere():
    found = links(README.read_text(encoding="utf-8"))
    assert any(link.startswith("docs/") for link in found), found
    assert broken_links(README) == []


def test_the_link_checker_sees_a_broken_anchor_and_a_missing_file(tmp_path):
    (tmp_path / "page.md").write_text("# A page\n\n## OFF's `JSONL` export\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](page.md#offs-jsonl-export) [no anchor](page.md#nothing) [no file](gone.md)\n"
        "![picture](page.md) `[not a link](gone.md)` [web](https://example.org/x#y)\n",
        encoding="utf-8",
    )
    assert broken_links(readme) == [
        "page.md#nothing: no heading #nothing in page.md",
        f"gone.md: no file {tmp_path / 'gone.md'}",
    ]
