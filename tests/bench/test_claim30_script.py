"""``scripts/claim-30.sh`` fixes FINISH_BY to one date-time before any command runs, so
every command of a lane that runs for hours stops starting tasks at the same moment; and
lane 1 settles default-recipe-30's verdict before it runs the other models."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "claim-30.sh"


@pytest.fixture
def fake_psilon(tmp_path):
    """A ``psilon`` that records its arguments, beside a ``python`` that is this one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "psilon").write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    (bin_dir / "python").write_text(f'#!/usr/bin/env bash\nexec {sys.executable} "$@"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir / "psilon", log


def _run(psilon, finish_by):
    env = {**os.environ, "PSILON": str(psilon), "FINISH_BY": finish_by}
    return subprocess.run(["bash", str(SCRIPT), "reports"], env=env, capture_output=True, text=True, timeout=120)


def _deadlines(log):
    calls = log.read_text().splitlines()
    bench = [c.split() for c in calls if c.startswith("bench ")]
    assert bench, calls
    return {c[c.index("--finish-by") + 1] for c in bench}


@pytest.mark.parametrize("given, expected", [
    ("+1h30m", lambda now: now + timedelta(hours=1, minutes=30)),
    ("2099-01-02T03:04", lambda now: datetime(2099, 1, 2, 3, 4)),
])
def test_finish_by_is_fixed_once_to_a_date_time(fake_psilon, given, expected):
    psilon, log = fake_psilon
    now = datetime.now()
    done = _run(psilon, given)
    assert done.returncode == 0, done.stderr
    (deadline,) = _deadlines(log)  # one date-time, whatever the form
    assert abs(datetime.fromisoformat(deadline) - expected(now)) < timedelta(minutes=1)


def test_a_clock_time_becomes_its_next_occurrence(fake_psilon):
    psilon, log = fake_psilon
    soon = datetime.now() + timedelta(minutes=5)
    done = _run(psilon, f"{soon:%H:%M}")
    assert done.returncode == 0, done.stderr
    (deadline,) = _deadlines(log)
    assert datetime.fromisoformat(deadline) == soon.replace(second=0, microsecond=0)


def test_a_bad_finish_by_stops_the_script_before_any_command(fake_psilon):
    psilon, log = fake_psilon
    done = _run(psilon, "half past nine")
    assert done.returncode != 0
    assert "claim-30: FINISH_BY: finish-by 'half past nine': expected a time of day" in done.stderr
    assert not log.exists()


def test_lane1_runs_the_claims_models_on_all_splits_before_the_other_models(fake_psilon):
    """default-recipe-30's verdict needs PSiLON Net, StandardNet and random forest on all 3
    splits: lane 1 runs those before the other models' splits 1-2 (`run lane1`: in the foreground)."""
    psilon, log = fake_psilon
    env = {k: v for k, v in os.environ.items() if k != "FINISH_BY"}
    done = subprocess.run(["bash", str(SCRIPT), "run", "lane1"], env={**env, "PSILON": str(psilon)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    default = [c.split() for c in log.read_text().splitlines() if c.startswith("bench default-recipe-30 ")]
    assert len(default) == 3, default
    first, claim, rest = default
    assert first[first.index("--splits") + 1] == "0" and "--models" not in first
    assert claim[claim.index("--models") + 1] == "psilon-net,standard-net,random-forest" and "--splits" not in claim
    assert "--models" not in rest and "--splits" not in rest
    bad = subprocess.run(["bash", str(SCRIPT), "run", "lane3"], env={**env, "PSILON": str(psilon)},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
