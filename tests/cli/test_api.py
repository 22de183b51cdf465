"""The public Python API, as a script uses it (in a subprocess: a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import lllt
from lllt import Cap, SyncCap, run_protocol, load_protocol, PreflightRefused, LlltError
assert "pydantic" not in sys.modules  # import lllt stays cheap
db = sys.argv[1]
first = run_protocol("aga-red-eod-25min", "sim://reference-cap?speed=max", db=db)
assert first.status == "completed", first
assert abs(first.delivered_fluence[655] - 0.5232) < 0.001
try:
    run_protocol("aga-red-eod-25min", "sim://reference-cap?speed=max", db=db)
except PreflightRefused as refused:
    assert isinstance(refused, LlltError) and refused.exit_code == 1
    constraints = [r.constraint for r in refused.reasons if r.action == "refuse"]
    assert constraints == ["session_spacing"], constraints
    assert refused.next_allowed_at > 0
else:
    raise SystemExit("the second session was not refused")
try:
    run_protocol("research-far-red-735nm", "sim://reference-cap?speed=max", db=":memory:")
except PreflightRefused as refused:
    assert "research_flag" in [r.constraint for r in refused.reasons]
else:
    raise SystemExit("a research protocol ran without research=True")
done = run_protocol("research-far-red-735nm", "sim://reference-cap?speed=max",
                    db=":memory:", research=True)
assert done.ok, done
assert load_protocol("aga-red-eod-25min").id == "aga-red-eod-25min"
with SyncCap("sim://reference-cap?speed=max") as cap:
    assert cap.info.simulated
print("ok")
"""


def test_the_api_of_the_readme(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "log.db")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "ok"
    assert not (tmp_path / ":memory:").exists()
