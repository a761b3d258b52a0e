"""What must never creep into the code or the repository."""

import re
import subprocess

from helpers import PROJECT

SOURCES = sorted((PROJECT / "src").rglob("*.py"))


def tracked_files():
    listed = subprocess.run(["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=True)
    return [PROJECT / name for name in listed.stdout.split()]


# A Dask worker and the job process it starts pass the job and its outcome through a pipe
# between the two: pickles that no file or network peer wrote.
PICKLE_BETWEEN_OWN_PROCESSES = {"src/bnlab/execution/cluster.py"}


def test_nothing_unpickles_except_the_restricted_unpickler():
    offenders = []
    for path in SOURCES:
        text = path.read_text()
        if re.search(r"allow_pickle\s*=\s*True|safe_mode\s*=\s*False", text):
            offenders.append(path.name)
        # pickle.load(s)/Unpickler are allowed only inside RestrictedUnpickler (bnlab.data.mnist)
        if (
            re.search(r"pickle\.loads?\(|cloudpickle|joblib\.load", text)
            and str(path.relative_to(PROJECT)) not in PICKLE_BETWEEN_OWN_PROCESSES
        ):
            offenders.append(path.name)
    assert offenders == []
    assert "class RestrictedUnpickler(pickle.Unpickler)" in (PROJECT / "src/bnlab/data/mnist.py").read_text()


def test_every_np_load_refuses_pickles():
    for path in SOURCES:
        for call in re.findall(r"np\.load\([^)]*\)", path.read_text()):
            assert "allow_pickle=False" in call, f"{path.name}: {call}"


SECRET = re.compile(
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+]{20,}"  # AWS secret
    r"|://[^/\s:@${}]+:[^/\s@${}.]{6,}@"  # a password inside a URL
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
    re.IGNORECASE,
)


def test_no_credentials_in_tracked_files():
    found = [
        f"{path.relative_to(PROJECT)}: {match.group(0)[:20]}..."
        for path in tracked_files()
        if path.is_file() and path.suffix not in (".lock",)
        for match in SECRET.finditer(path.read_text(errors="ignore"))
    ]
    assert found == []


def test_the_secret_scanner_finds_what_it_looks_for():
    assert SECRET.search(
        "MLFLOW_TRACKING_URI=postgresql://mlflow:" + "hunter2pass@db/mlflow"
    )  # split: this file is scanned too
    assert SECRET.search("AKIA" + "ABCDEFGHIJKLMNOP")
    assert not SECRET.search("postgresql+psycopg2://mlflow:${PGPASSWORD}@127.0.0.1/mlflow")


def test_servers_the_project_starts_listen_on_loopback():
    makefile = (PROJECT / "Makefile").read_text()
    for line in makefile.splitlines():
        if re.search(r"mlflow (ui|server)", line):
            assert "--host 127.0.0.1" in line, line
