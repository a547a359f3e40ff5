"""Atomic file writes: a temporary file beside the destination, fsync, then a rename. An interrupted
or failed write leaves either the previous file or the complete new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Callable

from ..errors import RestoreKitError


def atomic_write(path: str | Path, write: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Call ``write(tmp_path)``, then move the result to ``path``.

    The temporary name keeps ``path``'s extension (some writers choose the format from it) and starts
    with a dot, so folder listings skip it. Without ``overwrite`` an existing ``path`` is refused, also
    when it appears while writing.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise RestoreKitError(f"{path}: already exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RestoreKitError(f"{path.parent}: cannot create folder: {e.strerror or e}") from None
    tmp = _reserve_temp(path)
    mode = tmp.stat().st_mode & 0o777  # 0o666 less the umask
    try:
        write(tmp)
        os.chmod(tmp, mode)  # writers that recreate the file (safetensors) leave it 0600
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileExistsError):
            raise RestoreKitError(f"{path}: cannot write: {e.strerror or e}") from e
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), overwrite=overwrite)


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data), overwrite=overwrite)


def _reserve_temp(path: Path) -> Path:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, flags, 0o666))  # not mkstemp: its 0600 mode would stick to the result
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise RestoreKitError(f"{path}: cannot write: {e.strerror or e}") from None


def _move_no_clobber(tmp: Path, path: Path) -> None:
    # link() fails if the target exists, closing the race between the exists() check and the move
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise RestoreKitError(f"{path}: already exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it") from None
    except OSError:  # filesystems without hard links
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
