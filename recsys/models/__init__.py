"""The recommenders: ``popular``, ``als``, ``itemcf`` here; ``social`` and ``hybrid`` beside them;
``graphsage`` and ``lightgcn`` in ``gnn/``. All implement :class:`recsys.protocol.Recommender`."""
