"""Showing what mlbasics made: short summaries as text and HTML (:mod:`.display`), pictures
(:mod:`.plotting`; matplotlib is imported only there), Jupyter outputs and the live loss curve
(:mod:`.notebook`), and the progress bar (:mod:`.progress`).

Imports: :mod:`mlbasics.core` and the top-level modules. It sits beside the data path: a dataset,
an experiment or a result draws itself with it, so it reads what it shows by its attributes and
names those types for the type checker only.
"""
