"""The docs point where they say: every relative link in README.md, CONTRIBUTING.md and docs/
resolves (to a file, and to a heading where it names one), and no file of the repository points
to a file outside it."""

import re
import subprocess

import pytest

from helpers import PROJECT

PAGES = [PROJECT / "README.md", PROJECT / "CONTRIBUTING.md", *sorted((PROJECT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
README_LINES = 250


def anchors(page) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to -."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not ours to check
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or not linked.is_relative_to(PROJECT):
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert broken == []


def test_the_readme_is_a_page_for_users():
    assert len((PROJECT / "README.md").read_text().splitlines()) <= README_LINES


def test_no_file_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in tracked.split():
        path = PROJECT / name
        if path.suffix not in (".py", ".md", ".yaml", ".toml", ".cfg", ".txt", "") or not path.is_file():
            continue
        for found in re.findall(r"(?<![\w.])((?:\.\./)+[\w.\-/]+)", path.read_text(errors="ignore")):
            if not (path.parent / found).resolve().is_relative_to(PROJECT):
                offenders.append(f"{name}: {found}")
    assert offenders == []
