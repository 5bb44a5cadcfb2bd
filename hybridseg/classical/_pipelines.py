"""The named classical pipelines: split-and-merge rules, a pixel classifier, and the pixel
classifier followed by a grid or a dense CRF, each a scikit-learn ``Pipeline``."""

from __future__ import annotations

__all__ = ["CLASSICAL_PIPELINES", "CLASSICAL_STAGES", "make_classical_pipeline",
           "make_classical_stage"]

#: Names accepted by ``make_classical_pipeline``, with what each one is.
CLASSICAL_PIPELINES = {
    "splitmerge": "split-and-merge regions, classes by rules learned on region statistics",
    "pixel": "pixel classifier on multiscale intensity, edge, texture, colour, position",
    "pixel+grid": "pixel classifier, then a contrast-sensitive 4-connected grid CRF "
                  "(alpha-expansion), its weight chosen on out-of-fold unaries",
    "pixel+dense": "pixel classifier, then the dense CRF, its kernel weights chosen by "
                   "mean IoU on out-of-fold unaries",
}

#: Names accepted by ``make_classical_stage``: the stages the named pipelines are built of.
CLASSICAL_STAGES = {
    "splitmerge": "SplitMerge: split-and-merge regions, classes by learned rules",
    "pixel": "PixelClassifier: a random forest on multiscale hand-made features",
    "grid": "GridCRF: contrast-sensitive, 4-connected, its weight chosen by fit",
    "dense": "DenseCRF: its kernel weights chosen by mean IoU in fit",
}


def make_classical_stage(name, *, random_state=None, n_jobs=None):
    """One stage of the named classical pipelines, with the settings they use.

    ``make_classical_pipeline`` builds its pipelines from these, and ``hybridseg compare``
    takes its classical stages from here, so both run the same stages.

    Parameters
    ----------
    name : {"splitmerge", "pixel", "grid", "dense"}
        See ``CLASSICAL_STAGES``.
    random_state : int or None, default=None
        Seed of the stages that draw random numbers (split-and-merge, the pixel
        classifier).
    n_jobs : int or None, default=None
        Parallel jobs (joblib) of the stages that take them (the pixel classifier and
        the CRFs; split-and-merge runs on numba's threads).

    Returns
    -------
    stage : SplitMerge, PixelClassifier, GridCRF or DenseCRF
        Unfitted.

    Examples
    --------
    >>> from hybridseg.classical import make_classical_stage
    >>> make_classical_stage("dense").learn
    'grid'
    """
    if name not in CLASSICAL_STAGES:
        raise ValueError(f"name must be one of {sorted(CLASSICAL_STAGES)}, got {name!r}")
    if name == "splitmerge":
        from ._split_merge import SplitMerge

        return SplitMerge(random_state=random_state)
    if name == "pixel":
        from ._pixel import PixelClassifier

        return PixelClassifier(random_state=random_state, n_jobs=n_jobs)
    from ..crf import DenseCRF, GridCRF

    if name == "grid":
        return GridCRF(pairwise="contrast", n_jobs=n_jobs)
    # Weights by mean IoU rather than by log loss: on a random forest's uncalibrated
    # probabilities the log-loss learning picks cautious weights that gain less held-out
    # mean IoU (benchmarks/heldout_classical.py measures both, rows pixel+dense and
    # pixel+dense/weights).
    return DenseCRF(learn="grid", n_jobs=n_jobs)


def make_classical_pipeline(name, *, random_state=None, n_jobs=None):
    """A classical pipeline by name, ready to ``fit(X, y)``.

    The refiners are fitted on the pixel classifier's out-of-fold unaries: ``Pipeline.fit``
    calls ``PixelClassifier.fit_transform``, which predicts each training image with a
    model that did not see it, so a CRF is not tuned on over-confident scores.

    Parameters
    ----------
    name : {"splitmerge", "pixel", "pixel+grid", "pixel+dense"}
        See ``CLASSICAL_PIPELINES``.
    random_state : int or None, default=None
        Seed of the stages that draw random numbers.
    n_jobs : int or None, default=None
        Parallel jobs (joblib) of the stages that take them (the pixel classifier and
        the CRFs; split-and-merge runs on numba's threads).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps named ``"splitmerge"``, or ``"pixel"`` then ``"crf"``; nested parameters
        (``crf__weight``, ``pixel__sigmas``) are open to ``GridSearchCV``.

    Examples
    --------
    >>> from hybridseg.classical import make_classical_pipeline
    >>> make_classical_pipeline("pixel+dense").steps[1][0]
    'crf'
    """
    from sklearn.pipeline import Pipeline

    if name not in CLASSICAL_PIPELINES:
        raise ValueError(f"name must be one of {sorted(CLASSICAL_PIPELINES)}, got {name!r}")
    base, _, refine = name.partition("+")
    steps = [(base, make_classical_stage(base, random_state=random_state, n_jobs=n_jobs))]
    if refine:
        steps.append(("crf", make_classical_stage(refine, random_state=random_state,
                                                  n_jobs=n_jobs)))
    return Pipeline(steps)
