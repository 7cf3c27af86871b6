"""Tests of the web page (a package so that its conftest does not replace the top-level `conftest` module)."""
