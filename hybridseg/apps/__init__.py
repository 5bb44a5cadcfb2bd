"""The front ends: ``hybridseg compare``, ``segment``, ``demo`` and the command line.

They use the stages (``classical``, ``crf``, ``deep``), ``datasets``, ``metrics`` and the
leaf helpers; nothing else in the package imports them. ``hybridseg.compare`` and
``hybridseg.segment`` are re-exported at the top level, ``hybridseg.cli`` forwards here.

- ``_registry``: compare's methods by name and the default stages each name builds;
- ``_compare``: compare's runner (fitting, scoring, one process per method, results);
- ``_report``: compare's report files (csv, json, Markdown, HTML, figure);
- ``_common``: what the runner and the report share (file names, the results table);
- ``_segment``: segment a folder of images with a saved model;
- ``_demo``: the classical pipelines and the shipped networks on the embedded sample;
- ``cli``: the ``hybridseg`` command and its sub-commands.
"""
