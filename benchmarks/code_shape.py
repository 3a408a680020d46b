"""The shape of the package: lines, the longest functions and the largest parameter lists.

    python benchmarks/code_shape.py                 # coral_ft/ of this checkout
    python benchmarks/code_shape.py --root OTHER    # another checkout (e.g. a git worktree of an older commit)

Typer command signatures and the diffusers-style pipeline `__call__` are listed apart: their
parameters are the CLI's options and diffusers' calling convention, not a design choice.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from common import ROOT

EXEMPT_DIRS = ("cli",)  # typer commands: one parameter per option
EXEMPT = {("sample/pipeline.py", "__call__")}  # diffusers' pipeline calling convention
LIMIT = 8


def functions(package: Path):
    """(file, name, lines, parameters) of every function and method."""
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs] if p.arg not in ("self", "cls")]
                params += [a.vararg.arg] if a.vararg else []
                params += [a.kwarg.arg] if a.kwarg else []
                yield str(path.relative_to(package)), node.name, node.end_lineno - node.lineno + 1, len(params)


def exempt(file: str, name: str) -> bool:
    return file.split("/")[0] in EXEMPT_DIRS or (file, name) in EXEMPT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    package = args.root / "coral_ft"
    lines = sum(len(p.read_text().splitlines()) for p in package.rglob("*.py"))
    found = list(functions(package))
    print(f"{package}: {lines} lines in {len(list(package.rglob('*.py')))} files, {len(found)} functions")
    print("longest functions:")
    for file, name, n, _ in sorted(found, key=lambda f: -f[2])[: args.top]:
        print(f"  {n:4d} lines  {file}:{name}")
    print("largest parameter lists (typer commands and the pipeline's __call__ apart):")
    for file, name, _, k in sorted((f for f in found if not exempt(f[0], f[1])), key=lambda f: -f[3])[: args.top]:
        print(f"  {k:4d} params {file}:{name}")
    over = [f"{file}:{name} ({k})" for file, name, _, k in found if k > LIMIT and not exempt(file, name)]
    print(f"over {LIMIT} parameters: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    main()
