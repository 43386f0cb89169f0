"""socialrec ETL: raw dataset files / shop exports → validated, pseudonymised canonical tables → store.

Modules: :mod:`etl.schema` (tables, ``LoadedDataset``), :mod:`etl.pseudonymise`,
:mod:`etl.validate` (quarantine rules), :mod:`etl.datasets` (one reader per dataset and the
registry, ``read_dataset``), :mod:`etl.shop` (``csv:PATH`` / ``parquet:PATH``),
:mod:`etl.download` (pinned, checksummed downloads, ``ensure_dataset``), :mod:`etl.pipeline`
(``run_etl``), :mod:`etl.errors` (``EtlInputError``, ``DownloadError``).
"""
