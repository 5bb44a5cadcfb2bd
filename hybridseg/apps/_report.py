"""The report of ``hybridseg compare``: ``results.csv``, ``results.json``, ``report.md``,
a self-contained ``report.html`` (styles, chart and images inline, nothing fetched),
``figure.png`` (labels in flat colours) and ``figure_overlay.png`` (blended on the
images)."""

from __future__ import annotations

import base64
import html
import io
import os
import platform
import time
from pathlib import Path

import numpy as np

from ..utils._io import write_text_atomic as _write_text
from ._common import N_SHOWN, _slug, _spread, _write_json, vs_base_text, write_csv
from ._registry import _parse, describe

__all__ = ["write_report"]


def _shown(result, data):
    """For each shown test image: the image, its truth and each method's labels."""
    X, y, files = data["test"]
    idx = _spread(len(X), N_SHOWN)
    preds = {}
    for r in result.rows:
        f = result.out / "methods" / f"{_slug(r['method'])}.npz"
        if f.is_file():
            with np.load(f) as z:
                preds[r["method"]] = {i: z[f"p{i}"] for i in idx if f"p{i}" in z.files}
    return [(X[i], y[i], Path(files[i]).name, {m: p[i] for m, p in preds.items() if i in p})
            for i in idx]


def _pictured(result):
    """The methods the figures show: those whose labels of the shown images are kept."""
    return [r["method"] for r in result.rows if r["method"] not in result.without_arrays]


def _figure(result, data, shown, path, style="flat"):
    from ..viz import comparison_figure, save_png

    methods = _pictured(result)
    figure = comparison_figure(
        [s[0] for s in shown], [s[1] for s in shown],
        {m: [s[3].get(m) for s in shown] for m in methods}, colors=data["colors"],
        names=[s[2] for s in shown], n_classes=len(data["class_names"]),
        ignore_index=data["ignore_index"], class_names=data["class_names"], style=style)
    save_png(figure, path)


def _png_uri(rgb):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb(rgb, labels=False, width=240):
    from PIL import Image

    im = Image.fromarray(rgb)
    h = max(1, round(im.height * width / im.width))
    return np.asarray(im.resize((width, h), Image.NEAREST if labels else Image.LANCZOS))


def _per_class_md(rows, class_names):
    head = "| method | " + " | ".join(class_names) + " |\n"
    head += "|---|" + "---:|" * len(class_names) + "\n"
    return head + "".join(
        f"| {r['method']} | " + " | ".join(
            "n/a" if np.isnan(r[f"iou_{c}"]) else f"{100 * r[f'iou_{c}']:.1f}"
            for c in class_names) + " |\n" for r in rows)


def _deltas(rows, class_names):
    """Rows that refine another of the run: their per-class IoU minus the base's (a
    difference under 0.05 points is 0, not "-0.0")."""
    by_name = {r["method"]: r for r in rows}
    out = []
    for r in rows:
        base = by_name.get(r.get("base"))
        if base is not None:
            ds = [r[f"iou_{c}"] - base[f"iou_{c}"] for c in class_names]
            out.append((r, [0.0 if abs(d) < 5e-4 else d for d in ds]))
    return out


def _deltas_md(rows, class_names):
    deltas = _deltas(rows, class_names)
    if not deltas:
        return []
    head = "| method | vs | " + " | ".join(class_names) + " |\n"
    head += "|---|---|" + "---:|" * len(class_names) + "\n"
    return ["## IoU per class, difference from the base", "", head + "".join(
        f"| {r['method']} | {r['base']} | " + " | ".join(
            "n/a" if np.isnan(d) else f"{100 * d:+.1f}" for d in ds) + " |\n"
        for r, ds in deltas)]


def _warnings(rows):
    return [(r["method"], r["flag"]) for r in rows if r.get("flag")]


def _describe(method):
    try:
        return describe(method)
    except ValueError:  # a name of the user's own
        return "your estimator"


def command_line(config, methods, out=None):
    """The ``hybridseg compare`` command that reruns a configuration, into ``out`` when
    given (None when a method is the user's own estimator, which no command can name)."""
    try:
        for m in methods:
            _parse(m)
    except ValueError:
        return None
    parts = ["hybridseg compare", f"--dataset {config['dataset']}"]
    if config["data_root"]:
        parts.append(f"--data-root {config['data_root']}")
    parts.append(f"--methods {','.join(methods)}")
    for key in ("limit_train", "limit_test", "budget", "n_jobs"):
        if config.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {config[key]:g}")
    if config.get("device") is not None:
        parts.append(f"--device {config['device']}")
    parts.append(f"--seed {config['seed']}")
    if out is not None:
        parts.append(f"--out {out}")
    return " ".join(parts)


def _config_lines(config, data):
    n = {s: len(data[s][0]) for s in ("train", "val", "test")}
    budget = "none" if config["budget"] is None else f"{config['budget']:g} min per network"
    return [
        f"data set: {config['dataset']}"
        + (f" (from {config['data_root']})" if config["data_root"] else ""),
        f"images: {n['train']} train, {n['val']} val, {n['test']} test; "
        f"{len(data['class_names'])} classes",
        f"training budget: {budget}; seed {config['seed']}",
        *([] if data.get("prior_miou") is None else [
            f"label-prior baseline (class frequencies by position, no pixel read): "
            f"{100 * data['prior_miou']:.1f} mIoU"]),
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
    ]


def _note(notes):
    """A method's notes as one line: ``crf parameters: gaussian weight 3, ...``."""
    def words(key):
        return key.rstrip("_").replace("_", " ")

    def value(v):
        if isinstance(v, dict):
            return ", ".join(f"{words(k)} {value(x)}" for k, x in v.items())
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return "; ".join(f"{words(k)}: {value(v)}" for k, v in notes.items())


def _notes_md(result):
    return "\n".join(f"- **{method}**: {_note(notes)}"
                     for method, notes in result.notes.items() if notes)


def significance_lines(rows, alpha=0.05):
    """In words, which refinements changed the mIoU of their base significantly."""
    out = []
    for r in rows:
        if r.get("p_vs_base") is None:
            continue
        d, p = 100 * r["delta_vs_base"], r["p_vs_base"]
        if p < alpha:
            word = "improves on" if d > 0 else "is worse than"
            out.append(f"{r['method']} {word} {r['base']} by {abs(d):.1f} mIoU points "
                       f"(p = {p:.3g}, significant at {alpha:g})")
        else:
            out.append(f"{r['method']} against {r['base']}: {d:+.1f} mIoU points, not "
                       f"significant (p = {p:.3g}); the test images cannot tell them apart")
    return out


def _difference_lines(result, alpha=0.05):
    """The refinements against their bases, the pairs asked for, and the refinements
    whose base is not in the run, in words."""
    lines = significance_lines(result.rows, alpha)
    for t in result.pairs:
        d, p = 100 * t["delta"], t["p_value"]
        verdict = (f"significant at {alpha:g}" if p < alpha else
                   "not significant; the test images cannot tell them apart")
        lines.append(f"{t['b']} against {t['a']} (asked for): {d:+.1f} mIoU points "
                     f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}], p = {p:.3g}, "
                     f"{verdict}")
    for method, base in result.missing_bases.items():
        lines.append(f"{method} refines {base}, which is not in this run: add {base} to "
                     "the methods for its paired test")
    return lines


def _without_arrays_line(result):
    """In words, the kept results whose per-image arrays are gone."""
    return (f"{', '.join(result.without_arrays)}: kept from an earlier process without "
            "their per-image arrays (methods/<name>.npz, not found in the out folder), so "
            "their rows have no interval and no paired test, and they are left out of the "
            "figures; run them into a fresh --out to have them")


def _significance_md(result):
    lines = _difference_lines(result)
    return (["## Differences", "", *(f"- {line}" for line in lines), ""] if lines else [])


def _markdown(result, data, config):
    parts = ["# Comparison on " + os.path.basename(config["dataset"]), "",
             *(f"- {line}" for line in _config_lines(config, data)), "",
             "mIoU, pixel accuracy and boundary F1 in percent on the test split; fit seconds "
             "include the tuning of a CRF stage on val and the fit of the base a method "
             "shares with others; peak memory is the resident set of the process the "
             "method ran in. Intervals are 95% bootstrap intervals over the test images "
             "(resampled, seeded); a refinement is tested against its base on the same "
             "images (paired bootstrap interval of the difference, permutation p-value). "
             "Boundary mIoU is the mIoU within 4, 8 and 16 pixels of the true boundaries.",
             "", result.to_markdown(), ""]
    flagged = _warnings(result.rows)
    if flagged:
        parts += ["## Warnings", "", *(f"- ⚠ **{m}**: {flag}" for m, flag in flagged), ""]
    if result.without_arrays:
        parts += [f"Without statistics: {_without_arrays_line(result)}.", ""]
    parts += [*_significance_md(result), "## IoU per class", "",
              _per_class_md(result.rows, result.class_names),
              *_deltas_md(result.rows, result.class_names), "## Methods", ""]
    command = command_line(config, [r["method"] for r in result.rows], result.out)
    parts += [f"- **{r['method']}**: {_describe(r['method'])}" for r in result.rows]
    if command:
        parts += ["", "Rerun (finished methods are kept; a fresh --out starts over):", "",
                  "```bash", command, "```"]
    notes = _notes_md(result)
    if notes:
        parts += ["", "## What each fit chose", "", notes]
    if result.failed:
        parts += ["", "## Failed", ""] + [f"- **{m}**: {msg}" for m, msg in
                                          result.failed.items()]
    parts += ["", "![image, truth and each method's labels on test images](figure.png)", ""]
    return "\n".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;
max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:bold;background:#e8f4e8}
td.up{color:#1a7f37}td.down{color:#b42318}.flag{color:#b54708}
.grid td{border:none;padding:2px;text-align:center;font-size:.8em;vertical-align:top}
.grid img{display:block}
.legend span,.classes span{display:inline-block;margin-right:1.2em}
.legend i,.classes i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;
vertical-align:middle}.classes i{border:1px solid #999}
"""

_PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb",
            "#332288", "#117733", "#882255", "#999933", "#44aa99")


def _interval(r, low, high):
    return ("" if r.get(low) is None else
            f"[{100 * r[low]:.1f}, {100 * r[high]:.1f}]")


def _html_table(rows):
    cols = [("mIoU", "miou", 100, 1, max), ("pixel acc.", "pixel_accuracy", 100, 1, max),
            ("boundary F1", "boundary_f1", 100, 1, max), ("fit s", "fit_seconds", 1, 0, min),
            ("predict s/image", "predict_seconds_per_image", 1, 3, min),
            ("peak MB", "peak_memory_mb", 1, 0, min)]
    best = {key: pick(r[key] for r in rows) for _, key, _, _, pick in cols}
    out = ["<table><tr><th>method</th>" + "".join(f"<th>{t}</th>" for t, *_ in cols[:1])
           + "<th>95% interval</th><th>vs base: difference [interval], p</th>"
           + "".join(f"<th>{t}</th>" for t, *_ in cols[1:]) + "</tr>"]
    for r in rows:
        cells = [
            f'<td class="num{" best" if r[key] == best[key] and len(rows) > 1 else ""}">'
            f"{scale * r[key]:.{digits}f}</td>" for _, key, scale, digits, _ in cols]
        vs = html.escape(vs_base_text(r))
        name = html.escape(r["method"]) + (
            f' <span class="flag" title="{html.escape(r["flag"])}">⚠</span>'
            if r.get("flag") else "")
        out.append(f"<tr><td>{name}</td>{cells[0]}"
                   f'<td class="num">{_interval(r, "miou_ci_low", "miou_ci_high")}</td>'
                   f"<td>{vs}</td>{''.join(cells[1:])}</tr>")
    return "\n".join(out) + "</table>"


def _svg_intervals(rows):
    """mIoU of each method as a dot with its 95% bootstrap interval as an error bar."""
    label_w, plot_w, row_h = 170, 520, 22
    values = [v for r in rows for v in (r["miou"], r.get("miou_ci_low"),
                                         r.get("miou_ci_high")) if v is not None]
    lo = max(0.0, np.floor(20 * min(values)) / 20 - 0.05)
    hi = min(1.0, np.ceil(20 * max(values)) / 20 + 0.05)

    def x(v):
        return label_w + plot_w * (v - lo) / (hi - lo)

    height = len(rows) * row_h + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 40}" '
             f'height="{height}" role="img" aria-label="mIoU with 95% intervals">']
    for t in np.arange(lo, hi + 1e-9, 0.05):
        parts.append(f'<line x1="{x(t):.1f}" y1="8" x2="{x(t):.1f}" y2="{height - 25}" '
                     f'stroke="#ddd"/><text x="{x(t):.1f}" y="{height - 10}" '
                     f'font-size="11" text-anchor="middle">{100 * t:.0f}</text>')
    for i, r in enumerate(rows):
        y = 18 + i * row_h
        colour = _PALETTE[i % len(_PALETTE)]
        parts.append(f'<text x="{label_w - 8}" y="{y + 4}" font-size="12" '
                     f'text-anchor="end">{html.escape(r["method"])}</text>')
        title = f"{r['method']}: {100 * r['miou']:.1f}"
        if r.get("miou_ci_low") is not None:
            a, b = x(r["miou_ci_low"]), x(r["miou_ci_high"])
            title += f" {_interval(r, 'miou_ci_low', 'miou_ci_high')}"
            parts.append(f'<line class="errorbar" x1="{a:.1f}" y1="{y}" x2="{b:.1f}" '
                         f'y2="{y}" stroke="{colour}" stroke-width="2"/>'
                         f'<line x1="{a:.1f}" y1="{y - 5}" x2="{a:.1f}" y2="{y + 5}" '
                         f'stroke="{colour}" stroke-width="2"/>'
                         f'<line x1="{b:.1f}" y1="{y - 5}" x2="{b:.1f}" y2="{y + 5}" '
                         f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(r["miou"]):.1f}" cy="{y}" r="4" fill="{colour}">'
                     f"<title>{html.escape(title)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def _html_deltas(rows, class_names):
    deltas = _deltas(rows, class_names)
    if not deltas:
        return []
    out = ["<table><tr><th>method</th><th>vs</th>" + "".join(
        f"<th>{html.escape(c)}</th>" for c in class_names) + "</tr>"]
    for r, ds in deltas:
        out.append(f"<tr><td>{html.escape(r['method'])}</td><td>{html.escape(r['base'])}"
                   "</td>" + "".join(
                       '<td class="num">n/a</td>' if np.isnan(d) else
                       f'<td class="num {"up" if d > 0 else "down" if d < 0 else ""}">'
                       f"{100 * d:+.1f}</td>" for d in ds) + "</tr>")
    return ["<h2>IoU per class, difference from the base</h2>", "\n".join(out) + "</table>"]


def _html_per_class(rows, class_names):
    out = ["<table><tr><th>method</th>" + "".join(
        f"<th>{html.escape(c)}</th>" for c in class_names) + "</tr>"]
    for r in rows:
        vals = [r[f"iou_{c}"] for c in class_names]
        out.append(f"<tr><td>{html.escape(r['method'])}</td>" + "".join(
            '<td class="num">n/a</td>' if np.isnan(v) else
            f'<td class="num">{100 * v:.1f}</td>' for v in vals) + "</tr>")
    return "\n".join(out) + "</table>"


def _svg_chart(rows, class_names):
    """Grouped horizontal bars: IoU per class (one group per class, one bar per method)."""
    bar, gap, label_w, plot_w = 9, 10, 130, 560
    n = len(rows)
    group_h = n * bar + gap
    height = len(class_names) * group_h + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 60}" '
             f'height="{height}" role="img" aria-label="IoU per class and method">']
    for t in range(0, 101, 20):
        x = label_w + plot_w * t / 100
        parts.append(f'<line x1="{x}" y1="10" x2="{x}" y2="{height - 25}" stroke="#ddd"/>'
                     f'<text x="{x}" y="{height - 10}" font-size="11" '
                     f'text-anchor="middle">{t}</text>')
    for ci, c in enumerate(class_names):
        y0 = 10 + ci * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + n * bar / 2 + 4}" font-size="12" '
                     f'text-anchor="end">{html.escape(c)}</text>')
        for mi, r in enumerate(rows):
            v = r[f"iou_{c}"]
            w = 0 if np.isnan(v) else plot_w * v
            colour = _PALETTE[mi % len(_PALETTE)]
            title = f"{r['method']}: {c} " + ("n/a" if np.isnan(v) else f"{100 * v:.1f}")
            parts.append(f'<rect x="{label_w}" y="{y0 + mi * bar}" width="{w:.1f}" '
                         f'height="{bar - 1}" fill="{colour}"><title>{html.escape(title)}'
                         "</title></rect>")
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>'
                     f"{html.escape(r['method'])}</span>" for i, r in enumerate(rows))
    return f'<div class="legend">{legend}</div>\n' + "".join(parts)


def _html_grid(result, data, shown):
    from ..viz import as_rgb, colorize

    colors = data["colors"]
    methods = _pictured(result)
    heads = ["image", "truth", *methods]
    width = max(120, min(240, 1360 // len(heads)))  # the grid fits a wide screen
    out = ['<table class="grid"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
           + "</tr>"]
    for im, lab, name, preds in shown:
        cells = [(_thumb(as_rgb(im), width=width), name),
                 (_thumb(colorize(lab, colors), labels=True, width=width), "truth")]
        for m in methods:
            p = preds.get(m)
            cells.append(None if p is None else
                         (_thumb(colorize(p, colors), labels=True, width=width), m))
        out.append("<tr>" + "".join(
            "<td></td>" if c is None else
            f'<td><img src="{_png_uri(c[0])}" width="{c[0].shape[1]}" '
            f'height="{c[0].shape[0]}" alt="{html.escape(c[1])}"></td>' for c in cells)
            + "</tr>")
    swatches = [(tuple(int(v) for v in c), name)
                for c, name in zip(colors, data["class_names"])] + [((0, 0, 0), "void")]
    legend = '<div class="classes">' + "".join(
        f'<span><i style="background:rgb{rgb}"></i>{html.escape(name)}</span>'
        for rgb, name in swatches) + "</div>"
    return "\n".join(out) + "</table>\n" + legend


def _html(result, data, config, shown):
    title = "Comparison on " + os.path.basename(config["dataset"])
    body = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    body += [f"<li>{html.escape(line)}</li>" for line in _config_lines(config, data)]
    body += ["</ul>", "<p>mIoU, pixel accuracy and boundary F1 in percent on the test "
             "split (best in green); fit seconds include tuning a CRF stage on val; peak "
             "memory is the resident set of the process the method ran in.</p>",
             _html_table(result.rows)]
    flagged = _warnings(result.rows)
    if flagged:
        body.append('<h2>Warnings</h2><ul class="warnings">')
        body += [f"<li>⚠ <b>{html.escape(m)}</b>: {html.escape(flag)}</li>"
                 for m, flag in flagged]
        body.append("</ul>")
    if result.without_arrays:
        body.append(f"<p>Without statistics: {html.escape(_without_arrays_line(result))}."
                    "</p>")
    body += ["<h2>mIoU with 95% intervals</h2>",
             "<p>Dots: mIoU on the test split; bars: 95% bootstrap intervals over the "
             "test images.</p>", _svg_intervals(result.rows)]
    words = _difference_lines(result)
    if words:
        body.append("<h2>Differences</h2><p>A refinement is tested against its base on "
                    "the same test images (paired bootstrap interval of the difference, "
                    "permutation p-value).</p><ul>")
        body += [f"<li>{html.escape(line)}</li>" for line in words]
        body.append("</ul>")
    body += ["<h2>IoU per class</h2>", _svg_chart(result.rows, result.class_names),
             _html_per_class(result.rows, result.class_names),
             *_html_deltas(result.rows, result.class_names),
             "<h2>Test images</h2>", _html_grid(result, data, shown)]
    notes = [(m, n) for m, n in result.notes.items() if n]
    if notes:
        body.append("<h2>What each fit chose</h2><ul>")
        body += [f"<li><b>{html.escape(m)}</b>: {html.escape(_note(n))}</li>"
                 for m, n in notes]
        body.append("</ul>")
    if result.failed:
        body.append("<h2>Failed</h2><ul>")
        body += [f"<li><b>{html.escape(m)}</b>: {html.escape(msg)}</li>"
                 for m, msg in result.failed.items()]
        body.append("</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(result, data, config):
    """Write the report files of a comparison into ``result.out``.

    Parameters
    ----------
    result : ComparisonResult
    data : dict
        The splits, from ``_compare.load_data``.
    config : dict
        The run's settings.
    """
    from .._version import __version__

    out = result.out
    write_csv(out / "results.csv", result.rows, result.class_names)
    summary = dict(config=config, hybridseg_version=__version__,
                   written=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   class_names=list(result.class_names),
                   n_images={s: len(data[s][0]) for s in ("train", "val", "test")},
                   results=[{k: None if isinstance(v, float) and np.isnan(v) else v
                             for k, v in r.items()} for r in result.rows],
                   notes=result.notes, failed=result.failed,
                   pairs=result.pairs,
                   missing_bases=result.missing_bases,
                   without_arrays=result.without_arrays)
    _write_json(out / "results.json", summary)
    _write_text(out / "report.md", _markdown(result, data, config))
    shown = _shown(result, data)
    _figure(result, data, shown, out / "figure.png")
    _figure(result, data, shown, out / "figure_overlay.png", style="overlay")
    _write_text(out / "report.html", _html(result, data, config, shown))
