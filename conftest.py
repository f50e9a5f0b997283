"""Plugins for every test under this repository (core and providers)."""

pytest_plugins = ["mlport.testing.pytest_plugin"]
