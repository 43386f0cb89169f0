"""The graph store: one interface, two implementations (embedded, Neo4j), and the training snapshot.

`graph/` imports nothing else of socialrec's: the rest of the code talks to the store through
:class:`graph.store.GraphStore` and reads models' training data as a :class:`graph.snapshot.Snapshot`.
"""

from graph.snapshot import Snapshot
from graph.store import GraphStore, open_store

__all__ = ["Snapshot", "GraphStore", "open_store"]
