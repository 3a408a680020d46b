"""The package graph points down the data path: no package imports one above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "coral_ft"
# Lowest first. A package may import itself and anything listed before it. `config` sits above the
# parts whose names it validates (data sets, presets, objectives, samplers, metrics), which take
# their settings as plain objects; the commands and the loops that read a config sit above it.
LAYERS = ["errors", "files", "devices", "data", "models", "objectives", "checkpoint", "sample", "metrics", "config", "finetune", "train",
          "latents", "bench", "api", "cli"]


def imports_of(path: Path) -> set[str]:
    """coral_ft packages a module imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("coral_ft.")}
    return found


def layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = layer_of(path)
        if source not in LAYERS:  # __init__ (the public API) and __main__ (the entry point)
            continue
        for target in imports_of(path):
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(source):
                upward.append(f"{path.relative_to(PACKAGE)} -> {target}")
    assert not upward, "imports pointing up the data path:\n" + "\n".join(upward)


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert packages | modules <= set(LAYERS)
