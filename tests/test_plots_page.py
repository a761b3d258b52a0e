"""The offline page for `dvc plots show`: the three libraries inlined in order, no CDN."""

import pytest
from dvc_render.html import HTML
from dvc_render.vega import VegaRenderer

from bnlab.pipeline.plots_page import LIBRARIES, page, write


def fake_node_modules(root, body=lambda library: f"window['{library}'] = {{}};"):
    for library in LIBRARIES:
        path = root / library
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body(library))
    return root


def test_the_libraries_are_inlined_in_order_and_dvc_adds_no_cdn_script(tmp_path):
    template = page(fake_node_modules(tmp_path))
    positions = [template.index(f"window['{library}']") for library in LIBRARIES]
    assert positions == sorted(positions)  # Vega-Embed after Vega and Vega-Lite
    filled = HTML(template).with_scripts(VegaRenderer.SCRIPTS).with_element("<div id='p'></div>").embed()
    assert "<div id='p'></div>" in filled and "cdn.jsdelivr.net" not in filled


def test_a_missing_package_names_the_file_and_the_fix(tmp_path):
    (tmp_path / LIBRARIES[1]).parent.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="vega.min.js is missing: run `npm ci`"):
        page(tmp_path)


def test_a_script_that_would_end_its_element_is_refused(tmp_path):
    with pytest.raises(ValueError, match="contains '</script'"):
        page(fake_node_modules(tmp_path, lambda library: "'</script>'"))


def test_a_failed_write_leaves_no_page(tmp_path):
    target = tmp_path / "plots" / "offline.html"
    with pytest.raises(FileNotFoundError):
        write(tmp_path / "nowhere", target)
    assert not target.exists() and not list(target.parent.iterdir())
