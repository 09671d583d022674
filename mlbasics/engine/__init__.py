"""The training engine, from an experiment to a trained model: what to train (:mod:`.experiment`),
its components built and its data placed (:mod:`.setup`), the lecture's loop (:mod:`.loop`), the
steps it takes (:mod:`.steppers`; :mod:`.data_parallel` under torchrun), metrics (:mod:`.metrics`),
closed-form solvers (:mod:`.solvers`), stopping at the end of a step (:mod:`.interrupts`) and the
result (:mod:`.results`).

Imports: :mod:`mlbasics.core`, :mod:`mlbasics.show`, :mod:`mlbasics.data` and the top-level
modules. The loop knows the callback protocol and nothing of the callbacks a run adds to it.
"""
