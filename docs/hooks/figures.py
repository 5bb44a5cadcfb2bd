"""mkdocs hook that builds the documentation figures before each build.

Listed under ``hooks:`` in ``mkdocs.yml``. The figures are generated files and are not
committed (``docs/figures/`` is in ``.gitignore``): before each build, this hook runs
``tools/make_doc_figures.py`` into ``<docs_dir>/figures/`` unless every figure there is
already newer than that script. The figures are written before mkdocs collects the files
of the site, so they are published with the pages that show them.

This folder is left out of the site by ``exclude_docs`` in ``mkdocs.yml``.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

_SCRIPT = ("tools", "make_doc_figures.py")  # relative to the folder of mkdocs.yml


def _figure_names(script):
    """Read the script's ``FIGURES = (...)`` literal without running the script."""
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIGURES" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise PluginError(f"{script} has no FIGURES = (...) literal")


def _run(script, out_dir):
    spec = importlib.util.spec_from_file_location("make_doc_figures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(out_dir)


def on_pre_build(config):
    """Build the figures into ``<docs_dir>/figures/`` when missing or older than the script.

    Parameters
    ----------
    config : mkdocs.config.defaults.MkDocsConfig
        The build's configuration; the folder of ``config_file_path`` holds ``tools/``,
        and the figures go under ``docs_dir``.

    Raises
    ------
    mkdocs.exceptions.PluginError
        When the script fails, so that the build stops instead of publishing pages
        without their figures.
    """
    script = Path(config.config_file_path).resolve().parent.joinpath(*_SCRIPT)
    out_dir = Path(config.docs_dir) / "figures"
    since = script.stat().st_mtime
    paths = [out_dir / name for name in _figure_names(script)]
    if all(p.is_file() and p.stat().st_mtime >= since for p in paths):
        log.debug("figures in %s are up to date", out_dir)
        return
    log.info("Building the figures into %s", out_dir)
    try:
        _run(script, out_dir)
    except Exception as exc:
        raise PluginError(f"{script} failed: {exc!r}") from exc
