"""docs/architecture.md stays true to the package, both ways.

- Every module file of ``hybridseg/`` (``__init__.py`` aside) is named in the page, by the
  rule of ``../shared/acceptance/house.py``, and has its line in the page's layout tree.
- The layout tree lists no file or folder that does not exist, and every ``*.py`` path and
  every ``hybridseg._private`` module name anywhere in the page resolves to a file.
- The page calls nothing "planned".
"""

from __future__ import annotations

import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hybridseg"
DOC = ROOT / "docs" / "architecture.md"
# Where a bare file name in the page may live.
SEARCHED = ("hybridseg", "pipelines", "benchmarks", "tools", "examples", "tests", "docs")


def _text():
    return DOC.read_text(encoding="utf-8")


def _modules():
    """Module files of the package, relative to ``hybridseg/``, ``__init__.py`` aside."""
    return sorted(p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def _named(stem, text):
    """house.py's rule: the stem, with or without its leading underscore, as a word."""
    pattern = r"(?<![\w.])_?" + re.escape(stem.lstrip("_")) + r"(\.py)?\b"
    return re.search(pattern, text) is not None


def _layout(text):
    """The paths of the layout tree: the fenced block that opens with ``hybridseg/``.

    An entry is a line whose first word ends in ``/`` (a folder) or ``.py``/``.pyi``; each
    two spaces of indentation is one level down. Other lines continue a description.
    """
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    tree = [b for b in blocks if b.startswith("hybridseg/")]
    assert len(tree) == 1, "architecture.md needs one code block that opens with hybridseg/"
    paths, stack = [], []
    for n, line in enumerate(tree[0].splitlines(), 1):
        m = re.match(r"( *)(\S+)", line)
        if not m or not re.search(r"(/|\.pyi?)$", m.group(2)):
            continue
        depth, indent = divmod(len(m.group(1)), 2)
        assert not indent and depth <= len(stack), (
            f"layout line {n} ({line.strip()!r}): indent entries by two spaces per level")
        stack = [*stack[:depth], m.group(2)]
        paths.append("".join(stack))
    return paths


def _repo_files():
    out = []
    for top in SEARCHED:
        out += [p.relative_to(ROOT).as_posix() for p in (ROOT / top).rglob("*.py*")
                if "__pycache__" not in p.parts]
    return out


def test_every_module_is_named():
    text = _text()
    missing = [m for m in _modules() if not _named(Path(m).stem, text)]
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


def test_layout_lists_every_module():
    listed = {p for p in _layout(_text()) if p.startswith("hybridseg/")}
    missing = [m for m in _modules() if f"hybridseg/{m}" not in listed]
    assert not missing, (
        f"the layout tree of docs/architecture.md lacks: {', '.join(missing)}")


def test_layout_lists_only_what_exists():
    stale = [p for p in _layout(_text()) if not (ROOT / p).exists()]
    assert not stale, (
        f"the layout tree of docs/architecture.md names what does not exist: "
        f"{', '.join(stale)}")


def test_files_and_modules_named_exist():
    # as rendered: the page may spell a name with an entity or a backslash escape
    text = re.sub(r"\\([_*])", r"\1", html.unescape(_text()))
    files = _repo_files()
    stale = []
    for t in sorted(set(re.findall(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.pyi?)\b", text))):
        if t.startswith("../"):
            continue  # beside the repository (../shared)
        if (ROOT / t).is_file() or (PKG / t).is_file():
            continue
        if not any(f == t or f.endswith("/" + t) for f in files):
            stale.append(t)
    for name in sorted(set(re.findall(r"\bhybridseg(?:\.\w+)+", text))):
        where = PKG
        for part in name.split(".")[1:]:
            if (where / part).is_dir():
                where = where / part
            elif (where / f"{part}.py").is_file():
                break
            else:
                if part.startswith("_") and not part.startswith("__"):
                    stale.append(name)  # a private module that is not there
                break
    assert not stale, f"docs/architecture.md names what does not exist: {', '.join(stale)}"


def test_nothing_is_planned():
    assert not re.search(r"\bplanned\b", _text(), re.I), (
        "docs/architecture.md calls something planned: describe what exists")


def test_deep_and_the_front_ends_use_only_crf_s_public_names():
    # One mean-field engine in crf/: CRFRNN and the front ends reach it through
    # hybridseg.crf's public names, never its private modules.
    private = re.compile(r"from\s+(?:\.\.crf|hybridseg\.crf)\._|(?:\.\.|hybridseg\.)crf\._\w+")
    offenders = []
    for folder in ("deep", "apps"):
        for path in (PKG / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if private.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
