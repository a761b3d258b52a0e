"""MLflow's own UI in a real headless browser (Debian's chromium, driven by Playwright) on a store
the real pipeline filled: the address `bnlab summary` prints opens the runs table with the parent
run, expanding the parent shows its model runs, and grouping by the `variant` tag shows one group
per variant. Each view is saved as a screenshot under $BNLAB_TEST_ARTIFACTS (default:
test-artifacts/) in mlflow-ui/; docs/images/ shows one."""

import os
from pathlib import Path

import pytest

from helpers import PROJECT, make_mnist, run, split_project, store_env
from servers import mlflow_ui, require_chromium

SEEDS = [0, 1]
VARIANTS = ("batchnorm", "plain")
SCREENSHOTS = Path(os.environ.get("BNLAB_TEST_ARTIFACTS", PROJECT / "test-artifacts")) / "mlflow-ui"
WAIT_MS = 60_000  # the first page load compiles nothing, but the machine may be busy


@pytest.fixture(scope="module")
def browser():
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def runs_table(tmp_path_factory, browser):
    """The address of the runs table, as `bnlab summary --url` prints it, on a live `mlflow ui`."""
    root = split_project(
        tmp_path_factory.mktemp("ui") / "proj",
        make_mnist(300, 100),
        {"epochs": 1, "seeds": SEEDS, "hidden_units": [8], "probes": None},
    )
    run(["dvc", "repro", "report@notebook"], root, env=store_env())
    printed = run(["bnlab", "summary", "--url"], root, env=store_env()).stdout
    path = printed.strip().split("http://127.0.0.1:5000/", 1)[1]
    with mlflow_ui(f"sqlite:///{root / 'mlflow.db'}", root) as url:
        yield f"{url}/{path}"


@pytest.fixture
def page(browser, runs_table):
    """A fresh browser profile (the UI keeps a view's grouping in local storage) on the runs table."""
    context = browser.new_context(viewport={"width": 1500, "height": 800})
    opened = context.new_page()
    opened.goto(runs_table)
    parent_row(opened).wait_for(timeout=WAIT_MS)
    yield opened
    context.close()


def parent_row(page):
    return page.get_by_role("row").filter(has_text="notebook-").first


def rows(page) -> list[str]:
    return page.get_by_role("row").all_inner_texts()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / name)


@pytest.mark.slow
def test_the_printed_address_opens_the_runs_table_of_model_training_on_the_parent_run(page):
    screenshot(page, "runs-table.png")
    assert "workflowType=machine_learning" in page.url
    assert page.get_by_role("columnheader", name="Run Name").first.is_visible()
    assert page.get_by_text("Model training").is_visible() and not page.get_by_text("Overview").count()
    assert not [row for row in rows(page) if "notebook/" in row]  # the model runs are folded in their parent


@pytest.mark.slow
def test_expanding_the_parent_run_shows_its_model_runs(page):
    parent_row(page).get_by_role("button").first.click()  # the + beside the parent's name
    expected = {f"notebook/{variant}-seed{seed}" for variant in VARIANTS for seed in SEEDS}
    page.get_by_role("row").filter(has_text="notebook/plain-seed1").wait_for(timeout=WAIT_MS)
    screenshot(page, "parent-expanded.png")
    shown = {name for row in rows(page) for name in expected if name in row}
    assert shown == expected


@pytest.mark.slow
def test_grouping_by_the_variant_tag_shows_one_group_per_variant(page):
    page.get_by_role("button", name="Group by").click()
    page.get_by_text("variant", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("row").filter(has_text="Group: plain").wait_for(timeout=WAIT_MS)
    screenshot(page, "grouped-by-variant.png")
    groups = sorted(row.split("Group: ", 1)[1].split("\n")[0] for row in rows(page) if "Group: " in row)
    assert groups == sorted(VARIANTS)
    for variant in VARIANTS:  # each group holds that variant's seeds
        group = next(row for row in rows(page) if f"Group: {variant}" in row)
        assert f"\n{len(SEEDS)}\n" in f"{group}\n"
