"""One registry for everything looked up by name: models, degradations, losses, metric protocols,
converters, recipes and built-in weights. An unknown name is a :class:`RestoreKitError` that names the
nearest valid ones, so every lookup fails the same helpful way."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from .errors import RestoreKitError

T = TypeVar("T")
_MISSING: Any = object()


def nearest(name: object, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The valid names closest to ``name`` (difflib's ratio), best first."""
    return difflib.get_close_matches(str(name), list(choices), n=n, cutoff=cutoff)


def did_you_mean(name: object, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the nearest choices, or ``""`` when none is near."""
    close = [repr(c) for c in nearest(name, choices, n=n, cutoff=cutoff)]
    if not close:
        return ""
    return "; did you mean " + (close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]) + "?"


class Registry(Mapping[str, T], Generic[T]):
    """Names → values, in registration order. ``kind`` words the errors ("unknown loss 'l3'");
    ``load`` is called once before the first lookup (to import the modules that register entries, so
    that importing restorekit stays cheap); ``casefold`` matches names case-insensitively; ``listing``
    says where the valid names are listed (default: they are listed in the error); ``entries`` are
    registered at once."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None, *, load: Callable[[], None] | None = None,
                 casefold: bool = False, listing: str | None = None, cutoff: float = 0.6) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._load = load
        self._casefold = casefold
        self._listing = listing
        self._cutoff = cutoff
        for name, value in (entries or {}).items():
            self.register(name, value)

    def _key(self, name: str) -> str:
        return name.lower() if self._casefold else name

    def _ensure_loaded(self) -> None:
        if self._load is not None:
            load, self._load = self._load, None
            load()

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, value: T) -> T: ...

    def register(self, name: str, value: Any = _MISSING) -> Any:
        """Add ``value`` under ``name`` (or, without a value, a decorator that adds what it decorates).
        A name registered twice is a programming error."""

        def add(v: T) -> T:
            key = self._key(name)
            if key in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[key] = v
            return v

        return add if value is _MISSING else add(value)

    def get(self, name: str, default: Any = _MISSING) -> T:  # type: ignore[override]
        """The value registered as ``name``; unknown names raise with the nearest valid ones (or return
        ``default`` when one is given)."""
        self._ensure_loaded()
        if isinstance(name, str) and self._key(name) in self._entries:
            return self._entries[self._key(name)]
        if default is not _MISSING:
            return default
        raise self.unknown(name)

    def unknown(self, name: object) -> RestoreKitError:
        """The error for a name that is not registered."""
        self._ensure_loaded()
        key = self._key(name) if isinstance(name, str) else name
        hint = did_you_mean(key, self._entries, cutoff=self._cutoff)
        where = f"; {self._listing}" if self._listing and not hint else ""
        known = "" if self._listing else f" (known: {', '.join(self.names())})"
        return RestoreKitError(f"unknown {self.kind} {name!r}{hint}{where}{known}")

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        self._ensure_loaded()
        return iter(self._entries)

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
