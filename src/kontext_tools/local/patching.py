"""One way to swap a function of moto's for the local run's correction, and put it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def replaced(owner: object, name: str, replacement: object) -> Iterator[None]:
    """`owner.name` is `replacement` while active, then what it was again."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)
