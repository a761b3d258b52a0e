"""A run's git lineage: its commit, and whether the tree differed from it. What `dvc repro`
itself writes (dvc.lock and the outputs it lists) is not a difference; anything else is."""

import subprocess

import yaml

from bnlab.tracking.lineage import git_state

LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {"cmd": "train", "outs": [{"path": "models/notebook", "md5": "a.dir"}]},
        "report": {
            "cmd": "report",
            "outs": [
                {"path": "reports/notebook", "md5": "b.dir"},
                {"path": "docs/results.md", "md5": "c"},
                {"path": "../outside/the/repository", "md5": "e"},  # uncached, outside: git ignores it
            ],
        },
    },
}


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def committed_project(root, repository=None):
    """A repository (``repository``, or the project's own folder) whose project (dvc.lock,
    outputs in git, code) is all committed."""
    repository = repository or root
    for path, text in {
        "dvc.lock": yaml.safe_dump(LOCK),
        "reports/notebook/metrics.json": "{}",
        "docs/results.md": "# Results",
        "src/train.py": "print('train')",
        "params.yaml": "seed: 0",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(repository, "init", "-q")
    git(repository, "add", "-A")
    git(repository, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "project")
    return root


def test_what_dvc_repro_rewrites_leaves_a_committed_tree_clean(tmp_path):
    root = committed_project(tmp_path)
    assert git_state(root)["git_dirty"] == "false"
    retrained = {"cmd": "train", "outs": [{"path": "models/notebook", "md5": "d.dir"}]}
    (root / "dvc.lock").write_text(yaml.safe_dump({**LOCK, "stages": {**LOCK["stages"], "train": retrained}}))
    (root / "reports/notebook/metrics.json").write_text('{"accuracy": 1}')
    (root / "docs/results.md").unlink()  # DVC removes a stage's outputs before it runs it
    state = git_state(root)
    assert state == {"git_commit": state["git_commit"], "git_dirty": "false"} and len(state["git_commit"]) == 40


def test_an_edit_to_code_or_params_makes_the_tree_dirty(tmp_path):
    root = committed_project(tmp_path)
    (root / "reports/notebook/metrics.json").write_text('{"accuracy": 1}')
    (root / "src/train.py").write_text("print('edited')")
    assert git_state(root)["git_dirty"] == "true"
    git(root, "checkout", "--", "src/train.py")
    (root / "params.yaml").write_text("seed: 1")
    assert git_state(root)["git_dirty"] == "true"


def test_an_output_moved_out_of_the_pipeline_makes_the_tree_dirty(tmp_path):
    root = committed_project(tmp_path)
    git(root, "mv", "reports/notebook/metrics.json", "metrics.json")
    assert git_state(root)["git_dirty"] == "true"


def test_a_lock_dvc_cannot_have_written_makes_the_tree_dirty(tmp_path):
    root = committed_project(tmp_path)
    (root / "dvc.lock").write_text("<<<<<<< HEAD\nstages: {}\n=======\n>>>>>>> theirs\n")  # a merge's conflict
    assert git_state(root)["git_dirty"] == "true"


def test_a_project_in_a_subfolder_reads_its_own_lock(tmp_path):
    (tmp_path / "README.md").write_text("outside the project")
    root = committed_project(tmp_path / "project", repository=tmp_path)
    (root / "reports/notebook/metrics.json").write_text('{"accuracy": 1}')
    assert git_state(root)["git_dirty"] == "false"
    (tmp_path / "README.md").write_text("edited")
    assert git_state(root)["git_dirty"] == "true"


def test_outside_a_repository_the_state_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}
