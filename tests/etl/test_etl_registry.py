"""The dataset registry: known names, the cdnow hook, unknown names."""

from __future__ import annotations

import pytest

import etl.datasets as registry
from etl.datasets import DATASETS, DatasetSpec, get_spec, read_dataset

EXPECTED = {
    "ciao",
    "epinions",
    "lastfm-hetrec2011",
    "filmtrust",
    "yelp-hin",
    "amazon-hin",
    "amazon-all-beauty-5core-2018",
}


def test_every_shared_dataset_is_registered():
    assert EXPECTED <= set(DATASETS)
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name


def test_cdnow_is_listed_for_its_module():
    assert "cdnow" in registry.DATASET_MODULES


def test_absent_dataset_module_is_tolerated(monkeypatch):
    monkeypatch.setattr(registry, "DATASET_MODULES", ("filmtrust", "no_such_dataset_module"))
    assert set(registry._load_registry()) == {"filmtrust"}


def test_unknown_dataset_is_a_key_error(tmp_path, pseudonymiser):
    with pytest.raises(KeyError, match="unknown dataset"):
        get_spec("movielens")
    with pytest.raises(KeyError):
        read_dataset("movielens", None, pseudonymiser, tmp_path)
