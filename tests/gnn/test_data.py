"""Snapshot -> HeteroData and the fallback neighbour sampler behind LinkNeighborLoader."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from gnn.data import (
    CATEGORY,
    FOLLOWS,
    INTERACTS,
    ITEM,
    USER,
    FallbackNeighborSampler,
    normalized_adjacency,
    to_hetero_data,
)
from tests.conftest import synthetic_snapshot


def test_every_node_type_has_incoming_edges():
    data = to_hetero_data(synthetic_snapshot())
    dst_types = {et[2] for et in data.edge_types}
    assert set(data.node_types) == {USER, ITEM, CATEGORY}
    assert set(data.node_types) <= dst_types, "a node type without incoming edges drops out of to_hetero"


def test_edges_mirror_the_snapshot():
    snap = synthetic_snapshot()
    data = to_hetero_data(snap)
    assert data[INTERACTS].edge_index.shape[1] == snap.interactions.nnz
    assert data[FOLLOWS].edge_index.shape[1] == snap.follows.nnz
    u, i = data[INTERACTS].edge_index[:, 0].tolist()
    assert snap.interactions[u, i] != 0


def test_no_category_nodes_without_categories():
    snap = synthetic_snapshot()
    import dataclasses

    bare = dataclasses.replace(snap, item_category=np.full(snap.n_items, -1, np.int32), categories=np.array([], dtype=object))
    assert CATEGORY not in to_hetero_data(bare).node_types


def test_normalized_adjacency_is_symmetric_with_social_edges():
    snap = synthetic_snapshot()
    a = normalized_adjacency(snap.interactions, snap.follows, 0.5)
    assert abs(a - a.T).max() < 1e-6
    assert a[: snap.n_users, : snap.n_users].nnz > 0


def test_link_neighbor_loader_batches_are_valid_subgraphs():
    from torch_geometric.loader import LinkNeighborLoader
    from torch_geometric.sampler import NegativeSampling

    snap = synthetic_snapshot()
    data = to_hetero_data(snap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = FallbackNeighborSampler(data, num_neighbors=[3, 2], seed=0)
        loader = LinkNeighborLoader(
            data, num_neighbors=[3, 2], edge_label_index=(INTERACTS, data[INTERACTS].edge_index),
            neg_sampling=NegativeSampling("triplet", amount=2), batch_size=16, shuffle=True,
            neighbor_sampler=sampler, generator=torch.Generator().manual_seed(0),
        )
        batch = next(iter(loader))
    assert batch[ITEM].dst_neg_index.numel() == 2 * batch[USER].src_index.numel()
    for et in batch.edge_types:
        ei = batch[et].edge_index
        if ei.numel():
            assert ei[0].max() < batch[et[0]].num_nodes and ei[1].max() < batch[et[2]].num_nodes
            # every sampled edge is a real edge of the full graph
            glob = torch.stack([batch[et[0]].n_id[ei[0]], batch[et[2]].n_id[ei[1]]])
            full = {tuple(e) for e in data[et].edge_index.t().tolist()}
            assert all(tuple(e) in full for e in glob.t().tolist())
