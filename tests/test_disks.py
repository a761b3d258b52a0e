"""The full-disk tests' gate (tests/disks.py): it tries a mount, so a root process that may not
mount (a container without CAP_SYS_ADMIN) skips those tests with the reason instead of erroring."""

import os
import shutil
import sys

import pytest

from helpers import PROJECT, project_env, run

ASK = "import disks; print(disks.can_mount())"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and util-linux's setpriv")
def test_root_without_the_capability_to_mount_is_told_why_not():
    without = run(
        ["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", sys.executable, "-c", ASK],
        PROJECT / "tests",
        project_env(),
    ).stdout.strip()
    assert without.startswith("cannot mount a tmpfs here: ") and "permission denied" in without, without
