from __future__ import annotations

import warnings

import pytest

from beats_core import PluginWarning, hookimpl
from beats_core.cli import main
from beats_core.plugins import BUILTIN_DISTRIBUTIONS, collect_registrations, get_plugin_manager


def test_builtin_plugins_are_found_through_entry_points():
    manager = get_plugin_manager()
    distributions = {manager.distribution_of(plugin) for plugin in manager.get_plugins()}
    assert "beats-core" in distributions
    assert distributions <= set(BUILTIN_DISTRIBUTIONS)


def test_broken_plugin_warns_with_its_distribution_and_breaks_nothing(install_plugin, capsys):
    install_plugin("beats-plugin-broken")
    with pytest.warns(
        PluginWarning, match=r"'beats-plugin-broken' failed to load.*this_module_does_not_exist"
    ):
        manager = get_plugin_manager()
    assert "beats-core" in {manager.distribution_of(p) for p in manager.get_plugins()}
    assert "beats-plugin-broken" not in {manager.distribution_of(p) for p in manager.get_plugins()}
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "commands" in capsys.readouterr().out


class _Duplicate:
    @hookimpl
    def beats_poolings(self):
        return {"same-name": "second"}


class _First:
    @hookimpl
    def beats_poolings(self):
        return {"same-name": "first"}


class _Raising:
    @hookimpl
    def beats_poolings(self):
        raise RuntimeError("boom")


def test_duplicate_name_keeps_first_registration_and_warns():
    manager = get_plugin_manager()
    first, duplicate = _First(), _Duplicate()
    manager.register(first)
    manager.register(duplicate)
    try:
        with pytest.warns(PluginWarning, match="'same-name'.*already taken"):
            registrations = collect_registrations("beats_poolings")
        assert registrations["same-name"].value == "first"
        assert registrations["same-name"].distribution == "<local>"
    finally:
        manager.unregister(first)
        manager.unregister(duplicate)


def test_a_raising_hook_is_skipped_with_a_warning():
    manager = get_plugin_manager()
    raising, first = _Raising(), _First()
    manager.register(raising)
    manager.register(first)
    try:
        with pytest.warns(PluginWarning, match="raised RuntimeError: boom"):
            registrations = collect_registrations("beats_poolings")
        assert registrations["same-name"].value == "first"
    finally:
        manager.unregister(raising)
        manager.unregister(first)


def test_cli_without_command_prints_help_and_fails(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([]) == 2
    assert "usage: beats" in capsys.readouterr().err
