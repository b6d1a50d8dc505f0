"""The quick start of docs/estimators.md (copied into the README) runs as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "estimators.md"


def test_quickstart_runs(capsys):
    text = DOC.read_text()
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(DOC), "exec"), {"__name__": "__quickstart__"})
    out = capsys.readouterr().out
    assert "selected lambda:" in out and "test R^2:" in out
    r2 = float(re.search(r"test R\^2: (-?[0-9.]+)", out).group(1))
    assert r2 > 0.3  # diabetes: linear models reach about 0.4-0.5
