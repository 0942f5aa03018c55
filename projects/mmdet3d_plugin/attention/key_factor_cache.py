"""A small cache of key-side factors, so the decoder layers that share one
set of key lines (o, d) build their factors once per forward.

Entries are matched by tensor identity (``is``) and in-place version
counters of (o, d) plus a settings key. The cache holds references to the
(small, (B, Nk, 3)) line tensors, so a matched tensor cannot be a new tensor
that reuses freed memory.
"""
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

from torch import Tensor

_ALL_CACHES = weakref.WeakSet()  # every KeyFactorCache (the exact and triton paths each keep one)


def clear_key_factor_caches() -> None:
    """Empty every KeyFactorCache (they hold references to (o, d) and their factors)."""
    for cache in list(_ALL_CACHES):
        cache.clear()


class KeyFactorCache:
    """LRU cache keyed by (id(o), id(d), settings); values from ``build()``."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        _ALL_CACHES.add(self)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_build(self, o: Tensor, d: Tensor, settings: Hashable, build: Callable[[], Any]) -> Any:
        key = (id(o), id(d), settings)
        entry = self._entries.get(key)
        if entry is not None:
            o_ref, d_ref, o_ver, d_ver, value = entry
            if o_ref is o and d_ref is d and o_ver == o._version and \
                    d_ver == d._version:
                self._entries.move_to_end(key)
                return value
        value = build()
        self._entries[key] = (o, d, o._version, d._version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value
