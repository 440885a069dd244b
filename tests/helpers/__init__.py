"""Helpers for the tests: shared fixtures and child-process scripts."""
