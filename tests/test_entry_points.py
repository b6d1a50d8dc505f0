"""``python -m psilon`` is the ``psilon`` command; code outside the package uses public names only."""

import ast
import subprocess
import sys
from pathlib import Path

from psilon.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def test_python_dash_m_psilon_is_the_command_line():
    out = subprocess.run([sys.executable, "-m", "psilon", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert out.stdout == build_parser().format_help()
    bad = subprocess.run([sys.executable, "-m", "psilon", "bench", "no-such-protocol", "--out", "/tmp/x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no-such-protocol" in bad.stderr


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "psilon":
            parts = node.module.split(".")
            found += [f"{path.name}:{node.lineno} {node.module}" for p in parts if p.startswith("_") and p != "__main__"]
            found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_benchmarks_use_public_names_only():
    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    assert scripts, "no benchmark scripts found"
    found = [hit for path in scripts for hit in _private_imports(path)]
    assert found == [], f"benchmarks import private psilon names: {found}"


def test_the_private_import_check_can_fail(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from psilon.train import _tune_allocator\nfrom psilon.estimators._base import X\n")
    assert len(_private_imports(probe)) == 2
