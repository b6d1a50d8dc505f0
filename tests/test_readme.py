"""The README's Python blocks run as written, and its two commands are the Makefile's."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_python_blocks():
    assert BLOCKS, "README.md should contain runnable ```python blocks"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__readme__"})


def test_readme_commands_exist_in_makefile_and_ci():
    makefile = (ROOT / "Makefile").read_text()
    for command in ("make run", "make test"):
        assert command in README
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command
    assert "make test" in (ROOT / ".ci" / "run").read_text()
