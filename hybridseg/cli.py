"""Moved to ``hybridseg.apps.cli``; this name stays so ``hybridseg.cli.main`` works."""

from .apps.cli import build_parser, command, main  # noqa: F401
