"""hybridseg.compare: the registry, the output folder (files, columns, self-contained
HTML), resuming, user estimators, folder data sets and bad input."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hybridseg
from hybridseg.apps._common import COLUMNS
from hybridseg.apps._compare import load_data
from hybridseg.apps._registry import _parse, method_names
from hybridseg.apps.cli import main
from hybridseg.datasets import load_sample
from hybridseg.dummy import DummySegmenter

FAST = {"prior": DummySegmenter(strategy="spatial_prior"), "split": "splitmerge"}


def _strict_json(path):
    def reject(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(Path(path).read_text(), parse_constant=reject)


def test_the_registry_names_every_method():
    names = method_names()
    for name in ("splitmerge", "pixel", "pixel+grid", "pixel+dense", "crfrnn"):
        assert name in names
    for arch in ("unet", "fcn", "segnet", "deeplabv3plus", "pspnet"):
        assert {arch, f"{arch}+grid", f"{arch}+dense", f"crfrnn:{arch}"} <= set(names)
    assert _parse("pixel+dense") == ("pixel", "dense")
    assert _parse("crfrnn") == ("crfrnn:unet", None)
    assert _parse("crfrnn:fcn") == ("crfrnn:fcn", None)
    with pytest.raises(ValueError, match=r"unknown method 'unte'.*did you mean unet"):
        _parse("unte")


def test_compare_tunes_the_pipelines_crf_stages():
    """compare's ``pixel+grid``/``pixel+dense`` CRFs are the pipelines' own (and on a
    network's probabilities the dense CRF runs 5 iterations)."""
    from hybridseg.apps._registry import _base_estimator, _refiner
    from hybridseg.classical import make_classical_pipeline, make_classical_stage
    from hybridseg.crf import DenseCRF

    for kind in ("grid", "dense"):
        ours = _refiner(kind, False, 2)
        theirs = make_classical_pipeline(f"pixel+{kind}", n_jobs=2).named_steps["crf"]
        assert ours.get_params() == theirs.get_params()
    deep = _refiner("dense", True, 2)
    assert deep.get_params() == DenseCRF(n_iter=5, learn="grid", n_jobs=2).get_params()
    pixel = _base_estimator("pixel", None, None, 3, 2, False)
    assert pixel.get_params() == make_classical_stage("pixel", random_state=3,
                                                      n_jobs=2).get_params()


def test_a_budget_lets_the_networks_plan_their_training():
    """With --budget the scale, crops and epochs are planned from timed steps; without
    it, large images work at half scale for 40 epochs, as before."""
    from hybridseg.apps._registry import _base_estimator

    data = {"train": ([np.zeros((360, 480, 3), np.uint8)], [np.zeros((360, 480))])}
    budgeted = _base_estimator("unet", data, 10, 0, 1, False).get_params()
    assert budgeted["max_time"] == 600
    assert [budgeted[k] for k in ("scale", "crop_size", "epochs")] == ["auto"] * 3
    plain = _base_estimator("unet", data, None, 0, 1, False).get_params()
    assert (plain["scale"], plain["crop_size"], plain["epochs"]) == (0.5, None, 40)
    assert plain["max_time"] is None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    result = hybridseg.compare(FAST, "sample", out=out, isolate=False, verbose=False)
    return result, out


def test_the_output_folder_holds_the_report(run):
    result, out = run
    assert [r["method"] for r in result.rows] == ["prior", "split"]
    assert not result.failed
    for name in ("results.csv", "results.json", "report.md", "report.html", "figure.png",
                 "figure_overlay.png", "models/prior.hseg", "models/splitmerge.hseg"):
        assert (out / name).is_file(), name
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = load_sample().class_names
    assert list(rows[0]) == [*COLUMNS, *(f"iou_{c}" for c in names)]
    for row in rows:
        for key in ("miou", "pixel_accuracy", "boundary_f1", "boundary_miou_16px"):
            assert 0 <= float(row[key]) <= 1
        assert float(row["fit_seconds"]) >= 0 and float(row["peak_memory_mb"]) > 0
        # the interval holds the estimate; no base among the user's own estimators
        assert float(row["miou_ci_low"]) <= float(row["miou"]) <= float(row["miou_ci_high"])
        assert row["base"] == row["delta_vs_base"] == row["p_vs_base"] == ""
    summary = _strict_json(out / "results.json")
    assert [r["method"] for r in summary["results"]] == ["prior", "split"]
    assert summary["n_images"] == {"train": 3, "val": 1, "test": 2}
    md = (out / "report.md").read_text()
    assert "| method | mIoU [95% interval] |" in md and "figure.png" in md
    assert "## IoU per class" in md and "bootstrap" in md
    # the label-prior baseline is named; nothing here is below it
    prior = result["prior"]["miou"]
    assert f"label-prior baseline (class frequencies by position, no pixel read): " \
           f"{100 * prior:.1f} mIoU" in md
    assert all(r["flag"] == "" for r in rows) and "## Warnings" not in md
    fig = np.asarray(Image.open(out / "figure.png"))
    assert fig.ndim == 3 and fig.shape[0] > 100


def test_the_scores_are_the_metrics_of_the_saved_models(run):
    result, out = run
    from hybridseg import metrics

    data = load_data("sample")
    X, y, _ = data["test"]
    model = hybridseg.load(out / "models" / "prior.hseg")
    pred = model.predict(X)
    assert result["prior"]["miou"] == pytest.approx(
        metrics.mean_iou(y, pred, n_classes=11), abs=1e-9)
    assert result["prior"]["pixel_accuracy"] == pytest.approx(
        metrics.pixel_accuracy(y, pred, n_classes=11), abs=1e-9)


def test_the_html_report_is_self_contained(run):
    _, out = run
    page = (out / "report.html").read_text()
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<svg" in page and "IoU per class" in page
    assert "<script" not in page
    # the intervals as error bars, one per method, and in the table
    assert "mIoU with 95% intervals" in page and "<th>95% interval</th>" in page
    assert len(re.findall(r'class="errorbar"', page)) == 2
    # image, truth and two methods for each of the two test images
    assert len(re.findall(r"<img ", page)) == 2 * 4


def test_a_rerun_of_the_same_configuration_keeps_finished_methods(run, capsys):
    _, out = run
    before = {p: p.stat().st_mtime_ns for p in (out / "methods").glob("*.json")}
    result = hybridseg.compare(FAST, "sample", out=out, isolate=False, verbose=True)
    assert "done earlier, kept" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (out / "methods").glob("*.json")} == before
    assert [r["method"] for r in result.rows] == ["prior", "split"]


def test_a_method_that_was_not_finished_is_run_again_reusing_its_base(tmp_path, capsys):
    out = tmp_path / "o"
    methods = {"prior": DummySegmenter(strategy="prior"), "pixel+dense": "pixel+dense"}
    first = hybridseg.compare(methods, "sample:membrane", out=out, isolate=False)
    # as if the run had been killed while pixel+dense was being scored
    (out / "methods" / "pixel-plus-dense.json").unlink()
    kept = (out / "methods" / "prior.json").stat().st_mtime_ns
    capsys.readouterr()
    again = hybridseg.compare(methods, "sample:membrane", out=out, isolate=False)
    err = capsys.readouterr().err
    assert "prior: done earlier" in err and "pixel: fitted earlier" in err
    assert (out / "methods" / "prior.json").stat().st_mtime_ns == kept
    assert again["pixel+dense"]["miou"] == pytest.approx(first["pixel+dense"]["miou"])


def test_a_killed_run_resumes(tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "hybridseg", "compare", "--dataset", "sample:membrane",
           "--methods", "splitmerge,pixel", "--out", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = out / "methods" / "splitmerge.json"
    deadline = time.monotonic() + 120
    while not done.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and the method's process
    proc.wait()
    assert done.is_file()
    kept = done.stat().st_mtime_ns
    assert not (out / "results.csv").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert done.stat().st_mtime_ns == kept
    with open(out / "results.csv", newline="") as f:
        assert [row["method"] for row in csv.DictReader(f)] == ["splitmerge", "pixel"]
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failing_method_is_reported_and_the_others_kept(tmp_path):
    class Broken(DummySegmenter):
        def fit(self, X, y):
            raise RuntimeError("this estimator always fails")

    result = hybridseg.compare({"ok": DummySegmenter(), "broken": Broken()}, "sample",
                               out=tmp_path / "o", isolate=False, verbose=False)
    assert [r["method"] for r in result.rows] == ["ok"]
    assert "always fails" in result.failed["broken"]
    assert "always fails" in (tmp_path / "o" / "report.md").read_text()


def test_a_folder_data_set(tmp_path):
    d = load_sample()
    for split, idx in (("train", [0, 1, 2]), ("test", [4, 5])):
        for sub, arrays in ((split, d.images), (f"{split}annot", d.labels)):
            (tmp_path / "data" / sub).mkdir(parents=True)
            for i in idx:
                Image.fromarray(arrays[i][::4, ::4]).save(tmp_path / "data" / sub / f"{i}.png")
    (tmp_path / "data" / "classes.txt").write_text("\n".join(d.class_names) + "\n")
    data = load_data(tmp_path / "data")
    assert [len(data[s][0]) for s in ("train", "val", "test")] == [2, 1, 2]
    assert data["class_names"] == tuple(d.class_names)
    result = hybridseg.compare({"prior": DummySegmenter()}, tmp_path / "data",
                               out=tmp_path / "o", isolate=False, verbose=False)
    assert 0 <= result["prior"]["miou"] <= 1
    assert [c.removeprefix("iou_") for c in result["prior"] if c.startswith("iou_")] == \
        list(d.class_names)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="methods is empty"):
        hybridseg.compare([], "sample", out=tmp_path / "a")
    with pytest.raises(ValueError, match="unknown method 'pixle'"):
        hybridseg.compare("splitmerge,pixle", "sample", out=tmp_path / "a")
    with pytest.raises(TypeError, match=r"methods\['x'\] must be a registry name or an "
                                        "estimator"):
        hybridseg.compare({"x": 3}, "sample", out=tmp_path / "a")
    with pytest.raises(ValueError, match="limit_train must be a positive int"):
        hybridseg.compare(["splitmerge"], "sample", limit_train=0, out=tmp_path / "a")
    with pytest.raises(ValueError, match="budget must be a positive number"):
        hybridseg.compare(["splitmerge"], "sample", budget=-1, out=tmp_path / "a")
    with pytest.raises(ValueError, match="no such folder"):
        hybridseg.compare(["splitmerge"], tmp_path / "missing", out=tmp_path / "a")
    with pytest.raises(ValueError, match="'isbi' needs --data-root"):
        hybridseg.compare(["splitmerge"], "isbi", out=tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="needs train and test splits"):
        hybridseg.compare(["splitmerge"], tmp_path / "empty", out=tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        hybridseg.compare(["splitmerge"], "sample", out=tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(ValueError, match="not a comparison folder"):
        hybridseg.compare(["splitmerge"], "sample", out=tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    assert not (tmp_path / "a").exists()


def test_other_settings_in_the_same_folder_are_refused(run):
    _, out = run
    with pytest.raises(ValueError, match=r"other settings \(seed 0 there, 1 now\)"):
        hybridseg.compare(FAST, "sample", out=out, seed=1, isolate=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_the_run_ends_the_methods_process(tmp_path):
    """``kill`` of the compare process (SIGTERM, not Ctrl-C to the process group) ends
    the method's process too, rather than leaving it training on."""
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "hybridseg", "compare", "--dataset", "sample:membrane",
           "--methods", "unet", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    kids, deadline = [], time.monotonic() + 120
    while not kids and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        kids = children.read_text().split() if children.exists() else []
    try:
        assert kids, "the method's process did not start"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        for pid in map(int, kids):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_kept_records_without_their_arrays_are_named(run, tmp_path):
    """A finished folder copied without its ``.npz`` files (per-image counts, shown
    labels) keeps its rows; the report names the methods that lost their statistics,
    and the figures leave them out rather than drawing empty panels."""
    import shutil

    _, out = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.npz", "models"))
    (copy / "methods" / "split.npz").write_bytes((out / "methods" / "split.npz").read_bytes())
    result = hybridseg.compare(FAST, "sample", out=copy, isolate=False, verbose=False)
    assert result.without_arrays == ["prior"]
    assert result["prior"]["miou_ci_low"] is None
    assert result["split"]["miou_ci_low"] is not None
    report = (copy / "report.md").read_text()
    assert "Without statistics: prior: kept from an earlier process" in report
    assert _strict_json(copy / "results.json")["without_arrays"] == ["prior"]
    page = (copy / "report.html").read_text()
    grid = page[page.index('<table class="grid">'):]
    assert "<th>prior</th>" not in grid and "<th>split</th>" in grid
    full = Image.open(out / "figure.png").size
    fewer = Image.open(copy / "figure.png").size
    assert fewer[0] * fewer[1] < full[0] * full[1]  # one column fewer
    assert hybridseg.compare(FAST, "sample", out=out, isolate=False,
                             verbose=False).without_arrays == []


def test_the_command_line(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["compare", "--dataset", "sample:membrane", "--methods", "splitmerge",
               "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "| splitmerge |" in captured.out and "report.html" in captured.out
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [c for c in rows[0] if c.startswith("iou_")] == ["iou_membrane", "iou_cell"]
    # the report's rerun command writes to the same folder
    assert f"--seed 0 --out {out}" in (out / "report.md").read_text()
    assert main(["compare", "--dataset", "sample", "--methods", "nope", "--out",
                 str(tmp_path / "x")]) == 1
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_a_script_without_a_main_guard(tmp_path):
    """Methods run in ``python -c`` children, not multiprocessing spawns: a plain script
    works, and its own estimator class (in ``__main__``) runs in the script's process."""
    script = tmp_path / "s.py"
    script.write_text(
        "import hybridseg\n"
        "from hybridseg.dummy import DummySegmenter\n"
        "class Mine(DummySegmenter):\n"
        "    pass\n"
        "r = hybridseg.compare({'prior': DummySegmenter(), 'mine': Mine()},\n"
        "                      'sample:membrane', out='o')\n"
        "print([row['method'] for row in r.rows], r.failed)\n")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['prior', 'mine'] {}"
    assert "mine: runs in this process, as its class is defined in __main__" in out.stderr
    assert out.stderr.count("compare on sample:membrane") == 1  # not rerun by a child


def test_the_registry_knows_every_architecture_of_the_zoo():
    pytest.importorskip("torch")
    from hybridseg.apps._registry import ZOO
    from hybridseg.deep.models import MODELS

    assert set(ZOO) == set(MODELS)
    import inspect

    from hybridseg.apps._registry import ON_BACKBONES

    assert set(ON_BACKBONES) == {n for n, c in MODELS.items()
                                 if "backbone" in inspect.signature(c).parameters}
    for name in MODELS:
        assert {name, f"{name}+dense", f"{name}+grid", f"crfrnn:{name}"} <= set(method_names())


def test_the_registry_reads_backbones_and_saved_models():
    assert _parse("deeplabv3plus@resnet50") == ("deeplabv3plus@resnet50", None)
    assert _parse("unet@timm:resnet18+grid") == ("unet@timm:resnet18", "grid")
    assert _parse("model:m.hseg+dense") == ("model:" + os.path.abspath("m.hseg"), "dense")
    assert _parse("model:a+b.hseg") == ("model:" + os.path.abspath("a+b.hseg"), None)
    with pytest.raises(ValueError, match="ARCH@BACKBONE takes ARCH among"):
        _parse("segnet@resnet50")
    with pytest.raises(ValueError, match="give the model file"):
        _parse("model:+dense")


def test_a_saved_network_compared_as_it_is_and_with_a_crf(tmp_path, capsys):
    """``model:PATH`` rows: a network trained elsewhere (here: from_module of a torch
    module), used as it is and with a tuned dense CRF, in child processes."""
    torch = pytest.importorskip("torch")
    from hybridseg.deep import CNNSegmenter

    torch.manual_seed(0)
    k = len(load_sample().class_names)
    seg = CNNSegmenter.from_module(torch.nn.Conv2d(3, k, 3, padding=1), device="cpu")
    model = tmp_path / "mine.hseg"
    hybridseg.save(seg, model)
    out = tmp_path / "o"
    rc = main(["compare", "--dataset", "sample", "--methods",
               f"model:{model},model:{model}+dense", "--out", str(out), "--quiet",
               "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = {r["method"]: r for r in csv.DictReader(open(out / "results.csv", newline=""))}
    assert set(rows) == {f"model:{model}", f"model:{model}+dense"}
    assert float(rows[f"model:{model}"]["fit_seconds"]) == 0.0
    report = (out / "report.md").read_text()
    assert f"the saved model {model}, used as it is, then the dense CRF" in report
    assert "--device cpu" in report
    wrong = tmp_path / "wrong.hseg"
    hybridseg.save(CNNSegmenter.from_module(torch.nn.Conv2d(3, k + 1, 1), device="cpu"),
                   wrong)
    result = hybridseg.compare(f"model:{wrong}", "sample", out=tmp_path / "w",
                               isolate=False, verbose=False)
    assert f"predicts {k + 1} classes, the data set has {k}" in result.failed[
        f"model:{wrong}"]
    with pytest.raises(ValueError, match="CUDA is not available"):
        hybridseg.compare("splitmerge", "sample", out=tmp_path / "c", device="cuda")


def test_statistics_of_a_refinement_against_its_base(tmp_path):
    from hybridseg.apps._compare import _add_statistics, _base_of
    from hybridseg.apps._report import significance_lines

    assert _base_of("pixel+dense") == "pixel" and _base_of("crfrnn:unet") == "unet"
    assert _base_of("pixel") is None and _base_of(None) is None
    rng = np.random.default_rng(0)
    (tmp_path / "methods").mkdir()
    true = rng.integers(50, 100, (20, 3)).astype(float)
    inter = {"pixel": true * 0.5, "pixel-plus-dense": true * 0.8, "grid": true * 0.5}
    for slug, i in inter.items():
        np.savez(tmp_path / "methods" / f"{slug}.npz", counts_inter=i, counts_true=true,
                 counts_pred=true)
    rows = [{"method": m} for m in ("pixel", "pixel+dense", "grid", "mine")]
    items = [("pixel", "pixel", None), ("pixel+dense", "pixel+dense", None),
             ("grid", "grid", None), ("mine", None, object())]
    _add_statistics(rows, items, tmp_path, seed=0)
    base, dense, grid, mine = rows
    assert base["base"] is None and base["miou_ci_low"] <= base["miou_ci_high"]
    assert dense["base"] == "pixel" and dense["delta_vs_base"] > 0
    assert 0 < dense["delta_ci_low"] <= dense["delta_vs_base"] <= dense["delta_ci_high"]
    assert dense["p_vs_base"] < 0.01
    assert grid["base"] is None and mine["miou_ci_low"] is None  # no counts on disk
    lines = significance_lines(rows)
    assert len(lines) == 1 and "pixel+dense improves on pixel" in lines[0]


def test_rows_below_the_prior_or_barely_trained_are_flagged(tmp_path, capsys):
    from hybridseg.apps._compare import _add_flags

    rows = [dict(method=m, miou=v) for m, v in
            (("unet", 0.011), ("unet+dense", 0.3), ("pixel", 0.25), ("old", 0.3))]
    notes = {"unet": {"steps": 12}, "unet+dense": {"steps": 12}, "pixel": {},
             "old": {"steps": -1}}
    _add_flags(rows, notes, 0.144)
    unet, dense, pixel, old = rows
    assert "below the label-prior baseline (14.4 mIoU)" in unet["flag"]
    assert "only 12 optimiser steps" in unet["flag"] and "--budget" in unet["flag"]
    assert dense["flag"].startswith("its network trained for only 12")
    assert pixel["flag"] == old["flag"] == ""
    # End to end: a method worse than the prior is marked in the table, the report and
    # the console.
    out = tmp_path / "o"
    hybridseg.compare({"uniform": DummySegmenter(strategy="uniform"), "split": "splitmerge"},
                      "sample", out=out, isolate=False)
    assert "warning: uniform: below the label-prior baseline" in capsys.readouterr().err
    md = (out / "report.md").read_text()
    assert "| uniform ⚠ |" in md and "## Warnings" in md
    assert "- ⚠ **uniform**: below the label-prior baseline" in md
    page = (out / "report.html").read_text()
    assert '<span class="flag"' in page and "<h2>Warnings</h2>" in page
    with open(out / "results.csv", newline="") as f:
        flags = {r["method"]: r["flag"] for r in csv.DictReader(f)}
    assert flags["uniform"].startswith("below") and flags["split"] == ""


def test_per_class_differences_from_the_base():
    from hybridseg.apps._report import _deltas_md, _html_deltas

    names = ["a", "b"]
    rows = [dict(method="pixel", base=None, iou_a=0.5, iou_b=0.2),
            dict(method="pixel+dense", base="pixel", iou_a=0.55, iou_b=float("nan"))]
    md = "\n".join(_deltas_md(rows, names))
    assert "| pixel+dense | pixel | +5.0 | n/a |" in md
    assert _deltas_md(rows[:1], names) == [] and _html_deltas(rows[:1], names) == []
    assert '<td class="num up">+5.0</td>' in "".join(_html_deltas(rows, names))


@pytest.mark.slow
def test_a_dask_cluster_gives_the_local_results(run, tmp_path):
    pytest.importorskip("distributed")
    result, _ = run
    on_cluster = hybridseg.compare(FAST, "sample", out=tmp_path / "dask",
                                   scheduler="local:2", verbose=False)
    assert not on_cluster.failed
    for method in FAST:
        local, remote = result[method], on_cluster[method]
        for key in ("miou", "miou_ci_low", "miou_ci_high", "boundary_miou_8px",
                    "pixel_accuracy"):
            assert remote[key] == local[key], (method, key)
    with pytest.raises(ValueError, match="local:N"):
        hybridseg.compare(FAST, "sample", out=tmp_path / "bad", scheduler="local:x",
                          verbose=False)


def test_paired_tests_on_request_and_a_missing_base(tmp_path, capsys):
    out = tmp_path / "o"
    result = hybridseg.compare(["splitmerge", "pixel+dense", "pixel+grid"], "sample", out=out,
                               isolate=False, pairs="splitmerge:pixel+dense")
    (pair,) = result.pairs
    assert (pair["a"], pair["b"]) == ("splitmerge", "pixel+dense")
    want = result["pixel+dense"]["miou"] - result["splitmerge"]["miou"]
    assert pair["delta"] == pytest.approx(want, abs=1e-9)
    assert pair["ci_low"] <= pair["delta"] <= pair["ci_high"] and 0 <= pair["p_value"] <= 1
    assert result.paired_test("splitmerge", "pixel+dense")["delta"] == pair["delta"]
    # pixel, the base of the two CRF rows, was not run: said, not silently dropped
    assert result.missing_bases == {"pixel+dense": "pixel", "pixel+grid": "pixel"}
    err = capsys.readouterr().err
    assert "note: pixel+dense refines pixel, which is not in this run" in err
    md = (out / "report.md").read_text()
    assert "pixel+dense against splitmerge (asked for):" in md
    assert "pixel+grid refines pixel, which is not in this run" in md
    summary = _strict_json(out / "results.json")
    assert summary["pairs"][0]["b"] == "pixel+dense"
    with pytest.raises(ValueError, match="not a method of this run"):
        result.paired_test("splitmerge", "unet")
    with pytest.raises(ValueError, match="pairs names 'unet'"):
        hybridseg.compare(["splitmerge"], "sample", out=tmp_path / "p", pairs=[("splitmerge",
                                                                                "unet")])
    with pytest.raises(ValueError, match="'A:B' strings"):
        hybridseg.compare(["splitmerge"], "sample", out=tmp_path / "p", pairs=["splitmerge"])
