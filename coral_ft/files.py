"""How coral-ft writes files: whole or not at all (`atomic_path`), with the permissions the
user's umask asks for (`respect_umask`); and the TOML reader of every layer (`tomllib`).

A result, a marker, a reference or a shard is written under a temporary name beside it and renamed
into place when complete, so a reader (a resumed run, a bench in another process) never sees half a
file and a crash leaves none.

safetensors (0.6 and later) writes through a private temporary file that it renames into place,
so every `save_file` and every `save_pretrained` (diffusers, peft) leaves a weights file of mode
0600 whatever the umask: a colleague on a shared machine could not read an exported model. Each
function here that finishes writing a folder calls `respect_umask` on it, which gives the files
the mode a plain `open()` would have given them (0644 under umask 022).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["atomic_path", "respect_umask", "tomllib", "write_text_atomically"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; it becomes `path` when the block ends without
    error and is removed otherwise. It keeps the suffix (np.savez adds none) and starts with a dot
    and holds the process id (no glob for the final names matches it, no other process shares it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def respect_umask(path: str | Path) -> None:
    """Give each file under `path` (or `path` itself) the read/write bits the umask allows a new
    file (0666 & ~umask); bits a file already has are kept, none is taken away."""
    path = Path(path)
    mask = os.umask(0o077)  # Python reads the umask only by setting it: set it back at once
    os.umask(mask)
    allowed = 0o666 & ~mask
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    for file in files:
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode | allowed != mode:
            os.chmod(file, mode | allowed)
