"""The shape of a hostile probe: a call that must fail with one exception type and a message
that names the op or argument (a regular expression)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest


def probe(call: Callable[[], object], error: type[BaseException], message: str, id: str):
    return pytest.param(call, error, message, id=id)


def assert_fails_clearly(call: Callable[[], object], error: type[BaseException],
                         message: str) -> None:
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value).__module__ != "numpy", "a bare NumPy error leaked"
    assert re.search(message, str(caught.value)), f"{caught.value!s} does not match {message!r}"
