"""Service settings from AIR3D_* variables: parsed, checked, defaults that fit the machine."""

from __future__ import annotations

import pytest

from air3d.service.settings import Settings


def test_new_settings_parse_from_the_environment():
    settings = Settings.from_env({
        "AIR3D_MAX_PIXELS": "1000", "AIR3D_MAX_CONCURRENT": "3", "AIR3D_DECODE_THREADS": "1",
        "AIR3D_TORCH_THREADS": "2", "AIR3D_ACCESS_LOG": "true", "AIR3D_INFER_PROCESS": "0",
    })  # fmt: skip
    assert (settings.max_pixels, settings.max_concurrent, settings.decode_threads) == (1000, 3, 1)
    assert settings.resolved_torch_threads() == 2
    assert settings.access_log is True and settings.infer_process is False
    assert Settings().access_log is False  # off unless asked for


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AIR3D_ACCESS_LOG", "maybe", "not a valid boolean"),
        ("AIR3D_MAX_CONCURRENT", "0", "AIR3D_MAX_CONCURRENT must be at least 1"),
        ("AIR3D_TORCH_THREADS", "-1", "AIR3D_TORCH_THREADS must be at least 0"),
        ("AIR3D_MAX_PIXELS", "lots", "is not a valid int"),
    ],
)
def test_bad_settings_name_the_variable(name, value, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({name: value})


def test_one_torch_thread_on_a_small_cpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings().resolved_torch_threads() == 1
