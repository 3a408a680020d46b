"""Written files get the permissions the user's umask asks for.

safetensors (0.6 and later) writes through a private temporary file that it renames into place,
so every `save_file` and every `save_pretrained` (diffusers, peft) leaves a weights file of mode
0600 whatever the umask: a colleague on a shared machine could not read an exported model. Each
function here that finishes writing a folder calls `respect_umask` on it, which gives the files
the mode a plain `open()` would have given them (0644 under umask 022).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process's umask (Python can only read it by setting it: set it back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def respect_umask(path: str | Path) -> None:
    """Give each file under `path` (or `path` itself) the read/write bits the umask allows a new
    file (0666 & ~umask); bits a file already has are kept, none is taken away."""
    path = Path(path)
    allowed = 0o666 & ~current_umask()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    for file in files:
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode | allowed != mode:
            os.chmod(file, mode | allowed)
