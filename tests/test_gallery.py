"""The docs gallery hook (docs/hooks/gallery.py) on small scripts of our own.

The real examples run in the docs build (``mkdocs build --strict`` in CI), which fails when
one fails; these tests check the hook itself: pages, figures, captured output, the cache,
and the errors that stop a build.
"""

import importlib.util
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gallery():
    spec = importlib.util.spec_from_file_location("gallery_hook",
                                                  ROOT / "docs" / "hooks" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(root, name, body, doc='"""A title.\n\nWhat it shows.\n"""\n'):
    folder = root / "examples"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(doc + textwrap.dedent(body))
    return path


FIGURE = """
import os
from pathlib import Path

from PIL import Image

out = Path(os.environ["HYBRIDSEG_GALLERY_OUT"])
Image.new("RGB", (4, 3), "red").save(out / "fig.png")
(out / "work").mkdir()
Image.new("RGB", (4, 3), "blue").save(out / "work" / "not-a-figure.png")
print("hello from the example")
"""


def test_pages_figures_output_and_cache(gallery, tmp_path):
    doc = ('"""Two lines of code.\n\n    python examples/ok.py\n\nThe story, with ``code``.\n'
           'The lines are::\n\n    x = 1\n    y = 2\n\nAfter.\n"""\n')
    _script(tmp_path, "ok", FIGURE, doc=doc)
    out = tmp_path / "docs" / "gallery"
    assert gallery.build_gallery(tmp_path, out) == ["ok"]
    page = (out / "ok.md").read_text()
    assert page.startswith("# Two lines of code\n")
    assert "```bash\npython examples/ok.py\n```" in page
    assert "The lines are:\n\n```python\nx = 1\ny = 2\n```" in page
    assert "hello from the example" in page
    assert "![Figure written by ok.py](ok/fig.png)" in page
    assert "Image.new" in page and '"""' not in page  # the code, without its docstring
    assert sorted(p.name for p in (out / "ok").iterdir()) == [".stamp.json", "fig.png",
                                                               "ok.py"]
    index = (out / "index.md").read_text()
    assert "[Two lines of code](ok.md)" in index and "The story, with ``code``." in index
    # Nothing changed: nothing runs, and nothing is rewritten.
    mtime = (out / "ok.md").stat().st_mtime_ns
    assert gallery.build_gallery(tmp_path, out) == []
    assert (out / "ok.md").stat().st_mtime_ns == mtime
    # The script changed: it runs again. A removed example's page goes away.
    _script(tmp_path, "ok", FIGURE.replace("hello", "hi"), doc=doc)
    _script(tmp_path, "other", "print(1)\n")
    assert gallery.build_gallery(tmp_path, out) == ["ok", "other"]
    assert "hi from the example" in (out / "ok.md").read_text()
    (tmp_path / "examples" / "other.py").unlink()
    gallery.build_gallery(tmp_path, out)
    assert not (out / "other.md").exists() and not (out / "other").exists()


def test_a_failing_example_stops_the_build_with_its_name_and_error(gallery, tmp_path):
    _script(tmp_path, "broken", "print('before')\nraise RuntimeError('the reason')\n")
    with pytest.raises(PluginError, match=r"examples/broken.py failed with exit status 1"
                       r"(.|\n)*before(.|\n)*RuntimeError: the reason"):
        gallery.build_gallery(tmp_path, tmp_path / "out")


def test_a_slow_example_stops_the_build(gallery, tmp_path):
    _script(tmp_path, "slow", "import time\nprint('started', flush=True)\ntime.sleep(30)\n")
    with pytest.raises(PluginError, match=r"slow.py ran longer than 2 s(.|\n)*started"):
        gallery.build_gallery(tmp_path, tmp_path / "out", timeout=2)


def test_an_example_needs_a_title(gallery, tmp_path):
    _script(tmp_path, "untitled", "print(1)\n", doc="")
    with pytest.raises(PluginError, match="module docstring whose first line is its title"):
        gallery.build_gallery(tmp_path, tmp_path / "out")


def test_skip_writes_the_pages_without_running(gallery, tmp_path):
    _script(tmp_path, "never", "raise SystemExit(3)\n")
    assert gallery.build_gallery(tmp_path, tmp_path / "out", skip=True) == []
    assert "Not run" in (tmp_path / "out" / "never.md").read_text()


def test_the_nav_entry_becomes_a_section(gallery):
    nav = [{"Home": "index.md"}, {"Gallery": "gallery/index.md"}]
    pages = [{"Overview": "gallery/index.md"}, {"T": "gallery/t.md"}]
    assert gallery._expand(nav, pages)
    assert nav[1] == {"Gallery": pages}


def test_the_repository_examples_have_titles(gallery):
    examples = gallery.find_examples(ROOT)
    assert "crf_on_any_logits" in {ex.name for ex in examples}
    for ex in examples:
        assert ex.title and ex.summary(), ex.path
