"""mkdocs hook that runs the gallery examples and writes their pages.

Listed under ``hooks:`` in ``mkdocs.yml``. Every ``examples/*.py`` is a plain script whose
module docstring starts with its title. Before each build this hook runs each script in a
fresh Python process (the interpreter that runs mkdocs), in an empty temporary folder,
with ``MPLBACKEND=Agg`` and ``HYBRIDSEG_GALLERY_OUT`` naming a folder for its figures, and
writes into ``<docs_dir>/gallery/``:

- ``<name>.md``: the title, the rest of the docstring, the code, what it printed and the
  PNG figures it wrote at the top of ``HYBRIDSEG_GALLERY_OUT`` (in name order; what it
  writes in subfolders there is its own business and is not published);
- ``<name>/``: those figures and a copy of the script, for download;
- ``index.md``: one entry per example, with its first paragraph and first figure.

The nav entry ``Gallery: gallery/index.md`` in ``mkdocs.yml`` becomes a section with the
index and one page per example, in the order of the file names.

A script that exits with an error, or runs longer than ``HYBRIDSEG_GALLERY_TIMEOUT``
seconds (default 300), stops the build with its name and the end of its output. A script
runs again only when its text, the package's files or the interpreter changed since its
last run (a hash kept in ``<name>/.stamp.json``), so ``mkdocs serve`` stays quick.
``HYBRIDSEG_GALLERY_SKIP=1`` writes the pages with the code only, running nothing, for a
quick look at the text (never in CI).

The generated folder is in ``.gitignore``, like ``docs/figures/``; this hook's own folder
is left out of the site by ``exclude_docs``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

EXAMPLES = "examples"  # folder of the scripts, beside mkdocs.yml
OUT = "gallery"  # generated folder, under docs_dir
NAV_PAGE = f"{OUT}/index.md"  # the nav entry this hook expands
ENV_OUT = "HYBRIDSEG_GALLERY_OUT"
ENV_TIMEOUT = "HYBRIDSEG_GALLERY_TIMEOUT"
ENV_SKIP = "HYBRIDSEG_GALLERY_SKIP"
DEFAULT_TIMEOUT = 300.0
_TAIL = 3000  # characters of a failed script's output shown in the error


# ----------------------------------------------------------------------------- examples
class Example:
    """One script: its file, title, docstring body and code without the docstring."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.stem
        source = self.path.read_text(encoding="utf-8")
        self.source = source
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            raise PluginError(f"gallery: {path} is not valid Python: {exc}") from exc
        doc = ast.get_docstring(tree, clean=True)
        if not doc or not doc.strip().splitlines()[0].strip():
            raise PluginError(f"gallery: {path} needs a module docstring whose first line "
                              "is its title")
        lines = doc.strip().splitlines()
        self.title = lines[0].strip().rstrip(".")
        self.body = "\n".join(lines[1:]).strip("\n")
        first = tree.body[0]
        code_lines = source.splitlines()[first.end_lineno:]
        self.code = "\n".join(code_lines).strip("\n") + "\n"

    def summary(self):
        """The first paragraph of the docstring that is not a literal block."""
        for para in re.split(r"\n\s*\n", self.body):
            if para.strip() and not para.startswith((" ", "\t")):
                return " ".join(line.strip() for line in para.splitlines())
        return ""


def find_examples(root):
    """The ``examples/*.py`` scripts under ``root`` (sorted by name), parsed."""
    folder = Path(root) / EXAMPLES
    if not folder.is_dir():
        return []
    return [Example(p) for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")]


def rst_to_markdown(text):
    """The few reStructuredText habits of the docstrings, as Markdown.

    A paragraph ending in ``::`` ends in ``:`` and its indented block becomes a fenced
    Python block; any other indented block (a command line) becomes a fenced shell block.
    Double back-quotes are already a Markdown code span.
    """
    out, lines, i, literal = [], text.splitlines(), 0, False
    while i < len(lines):
        line = lines[i]
        indented = line.startswith((" ", "\t")) and line.strip()
        if indented and (i == 0 or not lines[i - 1].strip()):
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            code = textwrap.dedent("\n".join(block))
            lang = "python" if literal else "bash"
            out += [f"```{lang}", code, "```", ""]
            literal = False
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            line = stripped + ":" if stripped else ""
            literal = True
        elif line.strip():
            literal = False
        out.append(line)
        i += 1
    return "\n".join(out).strip("\n")


# ----------------------------------------------------------------------------- cache key
def _package_fingerprint():
    """A hash of the installed hybridseg package's files (names, sizes, contents)."""
    spec = importlib.util.find_spec("hybridseg")
    if spec is None or not spec.origin:
        return "no-hybridseg"
    root = Path(spec.origin).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts or p.suffix in (".pyc", ".nbi", ".nbc"):
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(example, fingerprint):
    """What decides whether a script must run again."""
    h = hashlib.sha256()
    for part in (example.source, fingerprint, sys.executable, sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- running
def _tail(text):
    text = text.strip()
    return text if len(text) <= _TAIL else "...\n" + text[-_TAIL:]


def run_example(example, dest, *, timeout=None):
    """Run one script in a fresh process; copy its figures into ``dest``.

    Returns
    -------
    result : dict
        ``stdout`` (str), ``figures`` (list of file names in ``dest``), ``seconds``.

    Raises
    ------
    mkdocs.exceptions.PluginError
        When the script fails or runs past ``timeout`` seconds.
    """
    if timeout is None:
        timeout = float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT))
    with tempfile.TemporaryDirectory(prefix=f"gallery-{example.name}-") as tmp:
        work, figs = Path(tmp, "work"), Path(tmp, "figures")
        work.mkdir()
        figs.mkdir()
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        env[ENV_OUT] = str(figs)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(example.path.resolve())], cwd=work, env=env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(
                exc.stdout, bytes) else (exc.stdout or "")
            raise PluginError(
                f"gallery: examples/{example.path.name} ran longer than {timeout:g} s "
                f"(set {ENV_TIMEOUT} to allow more); its output so far:\n{_tail(out)}"
            ) from None
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise PluginError(
                f"gallery: examples/{example.path.name} failed with exit status "
                f"{proc.returncode}; its output:\n{_tail(proc.stdout + proc.stderr)}"
            )
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        # The figures: PNG files at the top of the folder given (subfolders are the
        # script's working files), or of its cwd for a script that ignores the variable.
        where = figs if any(figs.glob("*.png")) else work
        figures = []
        for p in sorted(where.glob("*.png")):
            shutil.copyfile(p, dest / p.name)
            figures.append(p.name)
    return {"stdout": proc.stdout, "figures": figures, "seconds": seconds}


# ----------------------------------------------------------------------------- pages
def _fence(text, lang):
    """A fenced block that no run of back-quotes inside ``text`` can close."""
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def example_page(example, result):
    """The Markdown page of one example."""
    parts = [f"# {example.title}", ""]
    if example.body:
        parts += [rst_to_markdown(example.body), ""]
    if result is None:
        parts += ['!!! warning "Not run"',
                  f"    This build was made with `{ENV_SKIP}=1`: the script was not run.", ""]
    else:
        for fig in result["figures"]:
            parts += [f"![Figure written by {example.path.name}]({example.name}/{fig})", ""]
    parts += ["## Code", "",
              f"[Download `{example.path.name}`]({example.name}/{example.path.name}) "
              f"or run it from a checkout: `python examples/{example.path.name}`.", "",
              _fence(example.code, "python"), ""]
    if result is not None:
        parts += ["## Output", "",
                  f"What it printed when these pages were built "
                  f"({result['seconds']:.0f} s on the machine that built them):", "",
                  _fence(result["stdout"] or "(nothing)", "text"), ""]
    return "\n".join(parts)


def index_page(examples, results):
    """The gallery's index: one entry per example."""
    parts = [
        "# Gallery", "",
        "Short scripts, each a small story told in code, from `examples/` in the "
        "repository. Every one of them ran when these pages were built (offline, on the "
        "embedded sample that ships with the package); each page shows its code, what it "
        "printed and the figures it drew.", "",
    ]
    for ex in examples:
        # Not headings: the theme would list them in the nav beside the pages themselves.
        parts += [f"**[{ex.title}]({ex.name}.md)**", "", ex.summary(), ""]
        res = results.get(ex.name)
        if res and res["figures"]:
            parts += [f'[![{ex.title}]({ex.name}/{res["figures"][0]}){{ width="480" }}]'
                      f"({ex.name}.md)", ""]
    return "\n".join(parts)


def _write_if_changed(path, text):
    """Write ``text`` unless the file already holds it (``mkdocs serve`` watches it)."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_gallery(root, out_dir, *, skip=False, timeout=None):
    """Run every example (unless cached) and write the gallery's pages into ``out_dir``.

    Parameters
    ----------
    root : path-like
        The folder that holds ``examples/``.
    out_dir : path-like
        Where the pages go (``<docs_dir>/gallery``).
    skip : bool, default=False
        Write the pages without running anything.
    timeout : float, optional
        Seconds each script may run (default ``$HYBRIDSEG_GALLERY_TIMEOUT`` or 300).

    Returns
    -------
    ran : list of str
        The examples that were run (not taken from the cache).
    """
    out_dir = Path(out_dir)
    examples = find_examples(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = None if skip else _package_fingerprint()
    results, ran = {}, []
    for ex in examples:
        dest = out_dir / ex.name
        stamp = dest / ".stamp.json"
        result = None
        if not skip:
            key = cache_key(ex, fingerprint)
            try:
                cached = json.loads(stamp.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                cached = {}
            if cached.get("key") == key and all((dest / f).is_file()
                                                for f in cached.get("figures", [])):
                result = cached
                log.debug("gallery: %s is up to date", ex.name)
            else:
                log.info("gallery: running examples/%s", ex.path.name)
                result = run_example(ex, dest, timeout=timeout)
                result["key"] = key
                stamp.write_text(json.dumps(result, indent=1), encoding="utf-8")
                ran.append(ex.name)
                log.info("gallery: examples/%s ran in %.1f s", ex.path.name, result["seconds"])
        results[ex.name] = result
        dest.mkdir(parents=True, exist_ok=True)
        _write_if_changed(dest / ex.path.name, ex.source)
        _write_if_changed(out_dir / f"{ex.name}.md", example_page(ex, result))
    _write_if_changed(out_dir / "index.md", index_page(examples, results))
    # Pages of examples that no longer exist would be published without a nav entry.
    names = {ex.name for ex in examples}
    for p in out_dir.iterdir():
        stem = p.stem if p.suffix == ".md" else p.name
        if stem != "index" and stem not in names:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return ran


# ----------------------------------------------------------------------------- mkdocs
def _root(config):
    return Path(config.config_file_path).resolve().parent


def _expand(nav, pages):
    """Replace the ``gallery/index.md`` entry of ``nav`` by a section (in place)."""
    for i, item in enumerate(nav or []):
        if isinstance(item, dict):
            for title, value in item.items():
                if value == NAV_PAGE:
                    item[title] = pages
                    return True
                if isinstance(value, list) and _expand(value, pages):
                    return True
        elif item == NAV_PAGE:
            nav[i] = {"Gallery": pages}
            return True
    return False


def on_config(config):
    """Expand the gallery's nav entry into its index and one page per example."""
    examples = find_examples(_root(config))
    pages = [{"Overview": NAV_PAGE}] + [{ex.title: f"{OUT}/{ex.name}.md"} for ex in examples]
    if config.nav is not None and not _expand(config.nav, pages):
        log.warning("gallery: no '%s' entry in the nav of mkdocs.yml", NAV_PAGE)
    config.watch.append(str(_root(config) / EXAMPLES))
    return config


def on_pre_build(config):
    """Run the examples that changed and write the gallery's pages under ``docs_dir``.

    Raises
    ------
    mkdocs.exceptions.PluginError
        When an example fails or runs too long, so that the build stops instead of
        publishing a gallery that does not run.
    """
    skip = os.environ.get(ENV_SKIP, "") not in ("", "0")
    if skip:
        log.info("gallery: %s is set: the examples are not run", ENV_SKIP)
    start = time.perf_counter()
    ran = build_gallery(_root(config), Path(config.docs_dir) / OUT, skip=skip)
    if ran:
        log.info("gallery: ran %d example(s) in %.1f s", len(ran), time.perf_counter() - start)
