"""The HTML report of hybridseg.compare, loaded in headless Chromium: every image loads,
the intervals are drawn as error bars, the chart has its legend.

Skipped where no Chromium is installed (Debian: ``apt install chromium``)."""

import re
import shutil
import subprocess

import pytest

import hybridseg
from hybridseg.dummy import DummySegmenter

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)

PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const p = document.createElement("p");
  p.id = "probe";
  const bars = document.querySelectorAll("svg rect").length;
  const errs = Array.from(document.querySelectorAll("line.errorbar"))
    .filter(l => l.getBoundingClientRect().width > 0).length;
  const legend = document.querySelectorAll(".legend span").length;
  const classes = document.querySelectorAll(".classes span").length;
  p.textContent = `loaded ${ok} of ${imgs.length}, svg ${bars}, errorbars ${errs}, ` +
    `legend ${legend}, classes ${classes}`;
  document.body.appendChild(p);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_every_image_of_the_report_loads_in_chromium(tmp_path):
    out = tmp_path / "o"
    hybridseg.compare({"prior": DummySegmenter(strategy="spatial_prior"),
                       "split": "splitmerge"}, "sample", out=out, isolate=False,
                      verbose=False)
    page = (out / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                       capture_output=True, text=True, timeout=120)
    found = re.search(r'id="probe">loaded (\d+) of (\d+), svg (\d+), errorbars (\d+), '
                      r'legend (\d+), classes (\d+)<', r.stdout)
    assert found, (r.stdout[-500:], r.stderr[-500:])
    ok, total, bars, errorbars, legend, classes = map(int, found.groups())
    assert total == 2 * 4 and ok == total  # image, truth, two methods; two test images
    assert bars == 11 * 2  # a bar per class and method
    assert errorbars == 2  # each method's 95% interval, drawn with a visible width
    assert legend == 2  # the chart's legend names both methods
    assert classes == 11 + 1  # the label colours' legend: the classes and void
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,1600",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
