import io

from hybridseg.utils._progress import ProgressBar


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_lines_when_not_a_terminal():
    out = io.StringIO()
    with ProgressBar(4, "work", file=out) as bar:
        bar.update(note="a")
        bar.update(2, note="b")
        bar.write("hello")
        bar.update(5)  # clamps at the total
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("work [######..................] 1/4") and lines[0].endswith("a")
    assert lines[1].split()[2] == "3/4" and lines[2] == "hello"
    assert lines[3].split()[2] == "4/4"


def test_redraws_in_place_on_a_terminal():
    out = Tty()
    with ProgressBar(2, "t", file=out) as bar:
        bar.update(note="a long note")
        bar.update()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" in text
    # A shorter line is padded so that no character of the longer one is left.
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("t [########################] 2/2") and len(last) >= len(
        text.split("\r")[-2])


def test_disabled_draws_nothing():
    out = Tty()
    with ProgressBar(3, file=out, enabled=False) as bar:
        bar.update()
        bar.write("x")
    assert out.getvalue() == ""
