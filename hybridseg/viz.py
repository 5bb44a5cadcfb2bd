"""Figures without matplotlib: coloured label maps and grids of captioned tiles, drawn by PIL.

- ``colorize(label, colors)``: a label map as an RGB image, one colour per class;
- ``overlay(image, label, colors)``: the class colours blended on the image;
- ``tile(rgb, size)``: an image or coloured label map resized to a tile;
- ``figure_grid(rows, titles)``: tiles laid out in rows under column titles, each with a
  caption;
- ``comparison_figure(images, y_true, predictions, colors=...)``: the grid every
  comparison draws: each image, its truth and each method's labels with their mean IoU,
  and a legend of the class colours with ``class_names``;
- ``legend(colors, class_names, width)``: that legend alone, a strip of named swatches;
  ``with_legend(figure, colors, class_names)`` puts it under any figure;
- ``save_png(image, path)``: write a PNG through a temporary file and a rename, so that a
  half-written file is never left behind and a link at ``path`` is replaced, not followed.
"""

from __future__ import annotations

import numpy as np

from .utils._io import write_atomic

__all__ = ["as_rgb", "colorize", "comparison_figure", "figure_grid", "legend", "overlay",
           "save_png", "tile", "with_legend"]

TILE = (240, 180)  # default width, height of each tile
_PAD = 8  # blank pixels between tiles
_HEADER = 22  # height of the column titles
_CAPTION = 20  # height of the line under each tile


def colorize(label, colors, *, void_color=(0, 0, 0)):
    """Colour a label map with one RGB colour per class.

    Parameters
    ----------
    label : (H, W) ndarray of int
        Label map; values at or beyond ``len(colors)`` (void) get ``void_color``.
    colors : (K, 3) array_like of uint8
        Colour of each class.
    void_color : tuple of 3 int, default=(0, 0, 0)

    Returns
    -------
    rgb : (H, W, 3) ndarray of uint8
    """
    try:
        colors = np.asarray(colors, np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"colors must be (K, 3) RGB values in 0-255, got {colors!r}") from exc
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) == 0:
        raise ValueError(f"colors must be (K, 3) RGB values for K >= 1 classes, got an array "
                         f"of shape {colors.shape}")
    label = np.asarray(label)
    if label.dtype.kind not in "ui" or (label.size and label.min() < 0):
        raise ValueError("label must hold non-negative integer class ids")
    top = max(int(label.max(initial=0)) + 1, len(colors))
    palette = np.empty((top, 3), np.uint8)
    palette[:] = void_color
    palette[: len(colors)] = colors
    return palette[label]


def overlay(image, label, colors, *, alpha=0.5, ignore_index=255):
    """The class colours of a label map blended on its image.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        The image (any range ``as_rgb`` reads).
    label : (H, W) ndarray of int
    colors : (K, 3) array_like of uint8
    alpha : float, default=0.5
        Weight of the colours (0: the image alone, 1: the flat colours).
    ignore_index : int or None, default=255
        Pixels with this label (and any at or beyond K) show the image alone.

    Returns
    -------
    rgb : (H, W, 3) ndarray of uint8

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.viz import overlay
    >>> im = np.full((2, 2, 3), 200, np.uint8)
    >>> overlay(im, np.array([[0, 255], [0, 0]]), [(0, 0, 0)])[:, :, 0]
    array([[100, 200],
           [100, 100]], dtype=uint8)
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    rgb = as_rgb(image)
    label = np.asarray(label)
    if label.shape != rgb.shape[:2]:
        raise ValueError(f"label has shape {label.shape} but image is {rgb.shape[:2]}")
    flat = colorize(label, colors).astype(np.float32)
    known = label < len(np.asarray(colors))
    if ignore_index is not None:
        known &= label != ignore_index
    out = rgb.astype(np.float32)
    out[known] = (1 - alpha) * out[known] + alpha * flat[known]
    return np.rint(out).astype(np.uint8)


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the bitmap font has no size
        return ImageFont.load_default()


def tile(rgb, size=TILE, *, labels=False):
    """An image resized to a tile: nearest neighbour for label maps, Lanczos otherwise.

    Parameters
    ----------
    rgb : (H, W) or (H, W, 3) ndarray of uint8
    size : (int, int), default=TILE
        Width and height.
    labels : bool, default=False
        Whether the image is a coloured label map (keep its colours exact).

    Returns
    -------
    tile : PIL.Image.Image
    """
    from PIL import Image

    resample = Image.Resampling.NEAREST if labels else Image.Resampling.LANCZOS
    return Image.fromarray(np.asarray(rgb)).convert("RGB").resize(size, resample)


def figure_grid(rows, titles):
    """Lay tiles out in a grid with column titles and a caption under each tile.

    Parameters
    ----------
    rows : list of list of (PIL.Image.Image, str)
        One list per row: the tiles (all of one size) with their captions.
    titles : list of str
        One title per column.

    Returns
    -------
    figure : PIL.Image.Image
        RGB, white background.
    """
    from PIL import Image, ImageDraw

    tw, th = rows[0][0][0].size if rows and rows[0] else TILE
    n_cols = len(titles)
    width = n_cols * tw + (n_cols + 1) * _PAD
    height = _HEADER + len(rows) * (th + _CAPTION + _PAD) + _PAD
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    font = _font()
    for j, title in enumerate(titles):
        draw.text((_PAD + j * (tw + _PAD), _PAD // 2), title, fill="black", font=font)
    for i, row in enumerate(rows):
        top = _HEADER + i * (th + _CAPTION + _PAD)
        for j, (im, caption) in enumerate(row):
            left = _PAD + j * (tw + _PAD)
            figure.paste(im, (left, top))
            draw.text((left, top + th + 3), caption, fill="black", font=font)
    return figure


def as_rgb(image):
    """An image as ``(H, W, 3)`` uint8 for a tile: gray repeated over three channels,
    non-uint8 values stretched from their range to 0-255, channels beyond three dropped."""
    im = np.asarray(image)
    if im.dtype != np.uint8:
        lo, hi = float(im.min()), float(im.max())
        im = ((im - lo) / (hi - lo or 1) * 255).astype(np.uint8)
    return np.repeat(im[:, :, None], 3, axis=2) if im.ndim == 2 else im[..., :3]


def legend(colors, class_names, width, *, void_color=(0, 0, 0), void_name="void"):
    """A strip of colour swatches with the class names, wrapped to ``width`` pixels.

    Parameters
    ----------
    colors : (K, 3) array_like of uint8
    class_names : sequence of str
        K names.
    width : int
        Width of the strip in pixels.
    void_color : (3,) tuple or None, default=(0, 0, 0)
        Drawn last as ``void_name``; None leaves it out.

    Returns
    -------
    strip : PIL.Image.Image
        RGB, white background.
    """
    from PIL import Image, ImageDraw

    font = _font()
    entries = [(tuple(int(v) for v in c), str(n)) for c, n in zip(colors, class_names)]
    if void_color is not None:
        entries.append((tuple(void_color), void_name))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    swatch, gap, line = 12, 14, 18
    x, y, places = _PAD, _PAD // 2, []
    for color, name in entries:
        w = swatch + 4 + int(probe.textlength(name, font=font)) + gap
        if x + w > width - _PAD and x > _PAD:
            x, y = _PAD, y + line
        places.append((x, y, color, name))
        x += w
    strip = Image.new("RGB", (width, y + line + _PAD // 2), "white")
    draw = ImageDraw.Draw(strip)
    for x, y, color, name in places:
        draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], fill=color, outline="gray")
        draw.text((x + swatch + 4, y), name, fill="black", font=font)
    return strip


def comparison_figure(images, y_true, predictions, *, colors, names=None, titles=None,
                      n_classes=None, ignore_index=255, class_names=None, style="flat",
                      alpha=0.5):
    """Each image, its truth and each method's labels with their mean IoU, one row an image.

    Parameters
    ----------
    images : sequence of (H, W) or (H, W, C) ndarray
    y_true : sequence of (H, W) ndarray of int
        The true label maps; void pixels (``ignore_index``) are drawn black.
    predictions : dict of str to sequence of (H, W) ndarray of int
        Each method's label maps, one per image, in column order; an entry ``None`` leaves
        that method out of that row.
    colors : (K, 3) array_like of uint8
        Colour of each class.
    names : sequence of str, optional
        Captions of the images (file names); none by default.
    titles : dict of str to str, optional
        Column titles of the methods, where they differ from the keys.
    n_classes : int, optional
        K for the mean IoU; ``len(colors)`` by default.
    ignore_index : int or None, default=255
    class_names : sequence of str, optional
        The classes' names: a legend of the colours under the grid (void in black).
    style : {"flat", "overlay"}, default="flat"
        Label maps in flat colours, or blended on their image (``overlay``, with
        ``alpha``; void shows the image).
    alpha : float, default=0.5
        Weight of the colours with ``style="overlay"``.

    Returns
    -------
    figure : PIL.Image.Image

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.viz import comparison_figure
    >>> truth = np.zeros((4, 6), np.uint8); truth[:, 3:] = 1
    >>> fig = comparison_figure([np.zeros((4, 6))], [truth], {"all zero": [0 * truth]},
    ...                         colors=[(0, 0, 255), (255, 0, 0)])
    >>> fig.size  # three tiles of 240 x 180 with their titles and captions
    (752, 238)
    """
    from .metrics import mean_iou

    if style not in ("flat", "overlay"):
        raise ValueError(f"style must be 'flat' or 'overlay', got {style!r}")
    k = len(colors) if n_classes is None else n_classes
    titles = titles or {}
    rows = []
    for i, (im, truth) in enumerate(zip(images, y_true)):
        if style == "flat":
            def draw(lab):
                return tile(colorize(lab, colors), labels=True)
        else:
            def draw(lab, im=im):
                return tile(overlay(im, lab, colors, alpha=alpha, ignore_index=ignore_index))
        row = [(tile(as_rgb(im)), "" if names is None else names[i]),
               (draw(truth), "truth (void black)" if style == "flat" else "truth")]
        for preds in predictions.values():
            pred = preds[i]
            if pred is None:
                continue
            miou = mean_iou([truth], [pred], n_classes=k, ignore_index=ignore_index)
            row.append((draw(pred), f"mIoU {100 * miou:.1f}"))
        rows.append(row)
    grid = figure_grid(rows, ["image", "truth", *(titles.get(m, m) for m in predictions)])
    return grid if class_names is None else with_legend(grid, colors, class_names)


def with_legend(figure, colors, class_names, **kwargs):
    """``figure`` with ``legend(colors, class_names)`` under it, as wide as it.

    Parameters
    ----------
    figure : PIL.Image.Image
    colors : (K, 3) array_like of uint8
    class_names : sequence of str
    **kwargs
        Passed to ``legend`` (``void_color``, ``void_name``).

    Returns
    -------
    figure : PIL.Image.Image
    """
    from PIL import Image

    strip = legend(colors, class_names, figure.width, **kwargs)
    out = Image.new("RGB", (figure.width, figure.height + strip.height), "white")
    out.paste(figure, (0, 0))
    out.paste(strip, (0, figure.height))
    return out


def save_png(image, path):
    """Write a PIL image as PNG at ``path`` through a temporary file and a rename.

    An existing file at ``path`` is replaced (the caller decides whether it may be); a link
    there is replaced, not written through; a failed write leaves nothing behind.

    Parameters
    ----------
    image : PIL.Image.Image
    path : str or path-like
    """
    write_atomic(path, lambda f: image.save(f, format="PNG", optimize=True))
