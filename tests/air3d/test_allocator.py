"""The allocator setting that keeps freed memory for the next forward pass."""

from __future__ import annotations

import platform

import pytest

from air3d.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_glibc_takes_the_setting():
    assert keep_freed_memory() is True
