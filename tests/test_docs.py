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


# Published numbers: every number in the docs that reports an accuracy, a loss, a gain, a p or
# a drift must be one the results stage generated. benchmarks.md is exempt: its numbers are
# measurements of speed and memory, each with its machine.
GENERATED_PAGE = PROJECT / "docs" / "results.md"
EXEMPT = {GENERATED_PAGE, PROJECT / "docs" / "benchmarks.md"}
NUMBER = r"(\d+\.\d+)"
REPORTED = [
    re.compile(NUMBER + r"\s*%"),  # 96.95%
    re.compile(r"(?<![\w.])[+−]" + NUMBER),  # +2.44 (a gain)
    re.compile(r"\bp\s*[=<>≤]\s*" + NUMBER),  # p = 0.011
    re.compile(r"(?i)\b(?:loss|drift|accuracy|gain|d_z)\b[^\d\n]{0,25}?" + NUMBER),  # test loss 0.099
]


def reported_numbers(text: str) -> set[str]:
    return {match.group(1) for pattern in REPORTED for match in pattern.finditer(text)}


def generated_numbers() -> set[str]:
    return set(re.findall(NUMBER, GENERATED_PAGE.read_text()))


def test_the_number_finder_finds_each_kind_of_reported_number():
    text = "BN reached 96.95% (+2.44 points, p = 0.011); test loss 0.0990; drift 0.52 widths; lr 0.01"
    assert reported_numbers(text) == {"96.95", "2.44", "0.011", "0.0990", "0.52"}  # not the learning rate


@pytest.mark.parametrize("page", [p for p in PAGES if p not in EXEMPT], ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_published_number_is_a_generated_one(page):
    assert reported_numbers(page.read_text()) - generated_numbers() == set()
