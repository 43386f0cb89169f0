"""Apache Spark for the parts of socialrec that must scale past one machine.

* :mod:`recsys.spark.session` — one SparkSession per process (``local[2]`` by default; a real
  cluster via ``SOCIALREC_SPARK_MASTER``, e.g. ``spark://host:7077`` or ``k8s://https://…``).
* :mod:`recsys.spark.als` — ``spark_als``: Spark MLlib's implicit-feedback ALS behind the one
  model protocol (:class:`recsys.protocol.FactorModel`), so evaluation and serving treat it
  like ``als``.
* :mod:`recsys.spark.batch` — batch scoring: top-K lists for every user of a model version,
  computed on Spark and written to Parquet and to the graph store.

PySpark is imported lazily: nothing here loads a JVM until a Spark model is fitted or a batch
job runs.
"""
