"""Tests of sicodec.metrics (a package so that its conftest does not replace the top-level `conftest` module)."""
