"""Tools for testing mlbasics plugins, and anything else built on mlbasics (needs the ``test`` extra).

- :mod:`mlbasics.testing.strategies`: Hypothesis strategies for tensors, linear stacks, datasets and
  component params drawn from a spec's declared types and constraints.
- :mod:`mlbasics.testing.conformance`: checks that a plugin's components honour the contracts of
  their kind, as pytest test cases (:func:`~mlbasics.testing.conformance.parametrize_with_checks`)
  or as a plain function (:func:`~mlbasics.testing.conformance.check_components`).
- :mod:`mlbasics.testing.pytest_plugin`: an opt-in pytest plugin (``-p mlbasics.testing.pytest_plugin``)
  with a ``--mlbasics-device`` option, ``device``, ``registry`` and ``register_plugin`` fixtures and
  the Hypothesis profiles ``ci`` and ``dev``.

Nothing is imported here, so ``import mlbasics.testing`` costs nothing; docs/testing.md shows how a
plugin author puts the pieces together.
"""
