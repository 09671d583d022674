"""Run folders: checkpoints written atomically and checked when read (:mod:`.checkpoints`,
:mod:`._checkpoint_files`), training state as tensors and JSON, never pickle (:mod:`._state`), one
run per folder (:mod:`._run_lock`), whether the installed plugins can rebuild a saved run
(:mod:`._provenance`), and predictions of a saved model (:mod:`.prediction`).

Imports: :mod:`mlbasics.core`, :mod:`mlbasics.show`, :mod:`mlbasics.data`,
:mod:`mlbasics.engine` and the top-level modules.
"""
