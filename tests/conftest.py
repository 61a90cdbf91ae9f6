"""Fixtures shared by every test module."""

from __future__ import annotations

import contextlib
import re
from typing import Callable, ContextManager

import pytest


@pytest.fixture
def usage_error(capsys) -> Callable[[str], ContextManager[None]]:
    """`with usage_error(regex):` the block is refused as argparse's parser.error does.

    A bare `pytest.raises(SystemExit)` also passes on `sys.exit(0)` or on a refusal
    for another reason; this checks the exit code 2 and the message on stderr.
    """

    @contextlib.contextmanager
    def expect(match: str):
        with pytest.raises(SystemExit) as exit_info:
            yield
        assert exit_info.value.code == 2, f"exit code {exit_info.value.code!r}, expected 2"
        err = capsys.readouterr().err
        assert re.search(match, err), f"{match!r} not in stderr: {err!r}"

    return expect
