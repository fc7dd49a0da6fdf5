"""The README is executable: its python blocks run, its commands are the real ones."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text("utf-8")) if kind == lang]


def section(heading: str) -> str:
    text = README.read_text("utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_python_blocks_execute(tmp_path, monkeypatch):
    blocks = code_blocks("python")
    assert blocks, "README has no ```python blocks"
    monkeypatch.chdir(tmp_path)  # anything a block writes lands in a temporary folder
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks, 1):
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)


def test_quick_start_commands():
    blocks = [b for kind, b in FENCE.findall(section("Quick start")) if kind in ("bash", "sh")]
    commands = [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands == ["./dev demo", "./dev test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(re.match(r"^(exec\s+)?\./dev test\b", ln) for ln in lines), ci
    for script in (ROOT / "dev", ROOT / ".ci" / "run"):
        assert os.access(script, os.X_OK), f"{script} is not executable"
