"""Stage `results`: every experiment's reports → docs/results.md and the figures it shows
(docs/figures/): the headline, each experiment's tables, the verdict table and its rules
(:mod:`bnlab.analysis.results_page`)."""

import os
import shutil
import sys
from contextlib import ExitStack

from bnlab.analysis.claims import CLAIMS
from bnlab.analysis.generalizations import GENERALIZATIONS
from bnlab.analysis.published import read_results, reported_experiments
from bnlab.analysis.results_page import ResultsPage
from bnlab.analysis.verdicts import judge, unmeasurable
from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.experiments.params import DEFAULT_EXPERIMENT
from bnlab.pipeline.command import stage_main


def run(params_path: str = "params.yaml") -> None:
    # Every experiment reported under reports/ (params.yaml was validated by stage_main): the
    # page reads nothing else, so DVC knows all it depends on.
    reports = layout.reports_dir(DEFAULT_EXPERIMENT).parent  # reports/, the experiments' parent
    folders = reported_experiments(reports, DEFAULT_EXPERIMENT)
    results = {folder.name: read_results(folder) for folder in folders}
    figures = os.path.relpath(layout.RESULTS_FIGURES, layout.RESULTS_PAGE.parent)
    unmeasured = [(claim, why) for claim in CLAIMS if (why := unmeasurable(claim, results))]
    page = ResultsPage(results, judge(CLAIMS, results), GENERALIZATIONS, unmeasured, figures)
    with ExitStack() as outputs:  # both written under temporary names, renamed into place at the end
        text = outputs.enter_context(atomic_path(layout.RESULTS_PAGE))
        folder = outputs.enter_context(atomic_path(layout.RESULTS_FIGURES, directory=True))
        text.write_text(page.markdown())
        for name, source in page.figures().items():
            shutil.copyfile(source, folder / name)
    words = [v.word for v in page.verdicts]
    print(
        f"wrote {layout.RESULTS_PAGE} and {len(page.figures())} figures in {layout.RESULTS_FIGURES}/: "
        f"{len(words)} verdicts, " + ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))
    )


def main(argv: list[str] | None = None) -> int:
    return stage_main("results", __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
