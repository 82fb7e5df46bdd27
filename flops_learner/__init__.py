"""FLOps learner: the Flower client side, wrapping a repo's `ModelManager`.

Import from the submodules (`flops_learner.app`, `flops_learner.config`); this package imports
nothing itself so that `python -m flops_learner` can configure Flower before Flower is imported.
"""

__all__: list[str] = []
