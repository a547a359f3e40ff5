"""Official weights fetched on request (``restorekit download NAME``), never implicitly.

Only releases of :data:`restorekit.weights_catalog.RELEASES` with a stable direct URL and a known sha256
are fetched. The file streams into a temporary file in the cache, is checked against its sha256 and only
then renamed into place, so a cut connection or a wrong file leaves nothing behind; it is kept (under its
checksum) beside its conversion to restorekit's format, so that a second call reads the cache and makes
no request. The cache is ``$RESTOREKIT_HOME`` (default: the user's cache folder, ``~/.cache/restorekit``
on Linux, honouring ``$XDG_CACHE_HOME``)::

    $RESTOREKIT_HOME/originals/<sha256>/<file as released>
    $RESTOREKIT_HOME/weights/<name>.safetensors

``$RESTOREKIT_DOWNLOAD_BASE`` (or ``base_url=``) fetches from a mirror instead: the official URL
``https://HOST/PATH`` becomes ``BASE/HOST/PATH``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .errors import RestoreKitError
from .io.files import sha256_file
from .weights_catalog import RELEASES, Release

HOME_ENV = "RESTOREKIT_HOME"
BASE_ENV = "RESTOREKIT_DOWNLOAD_BASE"
TIMEOUT_S = 30.0
_CHUNK = 1 << 16


def cache_home(home: str | Path | None = None) -> Path:
    """The cache folder: ``home``, else ``$RESTOREKIT_HOME``, else ``restorekit`` in the user's cache folder."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return _user_cache_dir() / "restorekit"


def _user_cache_dir() -> Path:
    # platformdirs' choices, without the dependency
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def converted_path(name: str, home: str | Path | None = None) -> Path:
    """Where release ``name``'s restorekit checkpoint is cached (whether or not it is there)."""
    return cache_home(home) / "weights" / f"{RELEASES.get(name).name}.safetensors"


def original_path(release: Release, home: str | Path | None = None) -> Path:
    return cache_home(home) / "originals" / str(release.sha256) / release.file_name


def download_url(release: Release, base_url: str | None = None) -> str:
    """The URL fetched: the official one, or its copy under ``base_url`` / ``$RESTOREKIT_DOWNLOAD_BASE``."""
    if release.url is None:
        raise _not_downloadable(release)
    base = base_url if base_url is not None else os.environ.get(BASE_ENV, "")
    if not base:
        return release.url
    parts = urlsplit(release.url)
    return f"{base.rstrip('/')}/{parts.netloc}{parts.path}"


def cached_weights(name: str, home: str | Path | None = None) -> Path | None:
    """For ``weights=NAME``: the converted file of release ``name`` if it was downloaded; ``None`` when
    ``name`` is no release; an error saying how to get it when it is one but is not in the cache."""
    if name not in RELEASES:
        return None
    release = RELEASES.get(name)
    path = converted_path(name, home)
    if path.is_file():
        return path
    if not release.downloadable:
        raise _not_downloadable(release)
    raise RestoreKitError(f"official weights {name!r} are not downloaded yet (nothing downloads implicitly)",
                          hint=f"restorekit.download.download({name!r}) fetches, checks and converts them",
                          cli_hint=f"run `restorekit download {name}` first")


def download(name: str, *, home: str | Path | None = None, force: bool = False, progress: bool = True,
             base_url: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Fetch release ``name``, check its sha256, convert it and return the cached restorekit checkpoint.

    A release already in the cache is returned without a request (``force=True`` fetches and converts
    it again). ``progress`` shows a progress bar on stderr.
    """
    release = RELEASES.get(name)
    if not release.downloadable:
        raise _not_downloadable(release)
    dst = converted_path(name, home)
    if dst.is_file() and not force:
        return dst
    original = original_path(release, home)
    if force or not (original.is_file() and sha256_file(original) == release.sha256):
        fetch(release, original, url=download_url(release, base_url), progress=progress, timeout=timeout)
    return _convert(release, original, dst)


def fetch(release: Release, dest: Path, *, url: str, progress: bool = True, timeout: float = TIMEOUT_S) -> Path:
    """Stream ``url`` to ``dest`` atomically, checking the length the server announced and ``release.sha256``."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    from . import __version__
    from .io.files import atomic_write

    host = urlsplit(url).netloc or url
    hint, cli_hint = _by_hand(release)
    request = urllib.request.Request(url, headers={"User-Agent": f"restorekit/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise RestoreKitError(f"cannot download {url}: HTTP {exc.code} {exc.reason}", hint=hint, cli_hint=cli_hint) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # no network, DNS, refused, timeout
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise RestoreKitError(f"cannot reach {host}: {reason}", hint=hint, cli_hint=cli_hint) from None

    def dropped(got: int, total: int | None, why: str) -> RestoreKitError:
        of = f" of {total:,}" if total is not None else ""
        return RestoreKitError(f"the connection to {host} was cut after {got:,}{of} bytes of {release.file_name} "
                               f"({why}); no partial file was kept", hint="run it again; or " + hint,
                               cli_hint="run it again; or " + cli_hint)

    def write(tmp: Path) -> None:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        digest, got = hashlib.sha256(), 0
        with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=release.name,
                                         disable=not progress, leave=False) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise dropped(got, total, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
                if not chunk:
                    break
                fh.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if total is not None and got < total:
            raise dropped(got, total, "the server closed it early")
        actual = digest.hexdigest()
        if actual != release.sha256:
            raise RestoreKitError(
                f"{release.file_name} from {host}: sha256 mismatch (expected {release.sha256[:12]}…, got {actual[:12]}…); "
                "the file was deleted", hint=f"it is not the catalogued release: {hint}", cli_hint=f"it is not the catalogued release: {cli_hint}")

    with response:
        return atomic_write(dest, write)


def _convert(release: Release, original: Path, dst: Path) -> Path:
    from .checkpoints import load_state_dict_strict, save_checkpoint
    from .convert import convert_file
    from .models import create_model

    try:
        conv = convert_file(original)
        model = create_model(conv.arch, **conv.args)
        load_state_dict_strict(model, conv.state_dict, source=str(original))
    except RestoreKitError as exc:
        raise RestoreKitError(f"{release.name}: downloaded and verified {original}, but it does not convert: {exc}") from None
    source = {"file": release.file_name, "format": conv.source_format, "release": release.name, "url": release.url,
              "sha256": release.sha256, "page": release.page, **conv.notes}
    save_checkpoint(dst, model, arch=conv.arch, args=conv.args, metadata={"source": source}, overwrite=True)
    return dst


def _by_hand(release: Release) -> tuple[str, str]:
    where = f"download {release.file} from {release.page}"
    return f"{where} and pass it with weights=FILE", f"{where} and pass it with --weights FILE"


def _not_downloadable(release: Release) -> RestoreKitError:
    hint, cli_hint = _by_hand(release)
    if release.url is None:
        why = "have no stable direct download URL"
    elif release.sha256 is None:
        why = "have no known sha256, and restorekit downloads only files it can check"
    else:
        why = f"do not convert yet ({release.note})" if release.note else "do not convert yet"
        hint = cli_hint = f"the file is at {release.url} (sha256 {release.sha256[:12]}…)"
    return RestoreKitError(f"official weights {release.name!r} ({release.file}) {why}", hint=hint, cli_hint=cli_hint)
