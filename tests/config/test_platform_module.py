"""platform/ is a folder of apps, never a package: the standard library's `platform` must keep working."""

import importlib.util
import sysconfig
from pathlib import Path

from django.apps import apps


def test_stdlib_platform_module_works_inside_the_configured_app():
    assert apps.ready
    import platform

    assert platform.python_version().startswith("3.11")
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib


def test_the_apps_are_importable_without_sys_path_edits():
    for name in ("config", "accounts", "apikeys", "legal", "tiers", "portal", "core", "embedded"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        assert "/platform/" in spec.origin
