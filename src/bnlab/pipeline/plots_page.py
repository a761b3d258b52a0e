"""The page `dvc plots show` fills in, with Vega, Vega-Lite and Vega-Embed inlined.

DVC's own page loads the three from a CDN, so offline its interactive plots are blank. This one
carries the scripts of the npm packages that package-lock.json pins (`make` runs `npm ci` and
then this module); `.dvc/config` names it as `plots.html_template`. It has no `{scripts}`
placeholder, so DVC's CDN tags are left out of the page.

    python -m bnlab.pipeline.plots_page node_modules
"""

from __future__ import annotations

import sys
from pathlib import Path

from bnlab.core.atomic import atomic_path

TEMPLATE = Path(".dvc/plots/offline.html")  # .dvc/config: plots.html_template = plots/offline.html
LIBRARIES = (
    "vega/build/vega.min.js",
    "vega-lite/build/vega-lite.min.js",
    "vega-embed/build/vega-embed.min.js",
)  # in this order: Vega-Embed needs the others
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>bnlab: DVC plots</title>
{inlined}
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page(node_modules: Path) -> str:
    """The template, with each library's minified build inlined in a script element."""
    scripts = []
    for library in LIBRARIES:
        path = Path(node_modules) / library
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `npm ci` first (package.json)")
        source = path.read_text(encoding="utf8")
        if "</script" in source:  # would end the element early
            raise ValueError(f"{path} contains '</script' and cannot be inlined")
        scripts.append(f"<script>/* {library} */\n{source}\n</script>")
    # DVC fills {plot_divs} and {refresh_tag} with str.replace, so braces in the scripts are safe.
    return PAGE.replace("{inlined}", "\n".join(scripts))


def write(node_modules: Path, target: Path = TEMPLATE) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(page(node_modules), encoding="utf8")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bnlab.pipeline.plots_page NODE_MODULES", file=sys.stderr)
        return 2
    try:
        print(f"wrote {write(Path(args[0]))}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"bnlab.plots_page: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
