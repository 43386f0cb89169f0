"""One SparkSession per process, configured for socialrec.

The master comes from ``SOCIALREC_SPARK_MASTER`` (default ``local[2]``: the 2 cores of a CI
machine); ``SOCIALREC_SPARK_DRIVER_MEMORY`` sets the driver's heap (default ``2g``). Spark's own
logs are kept at WARN, its UI is off, Arrow transfers pandas frames.

Raises (from :func:`spark_session`): ``RuntimeError`` with a clear message when PySpark or a Java
runtime is missing.
"""

from __future__ import annotations

import os
import shutil
import threading

_LOCK = threading.Lock()
_SESSION = None
DEFAULT_MASTER = "local[2]"


def spark_master() -> str:
    """The Spark master URL socialrec uses (``SOCIALREC_SPARK_MASTER`` or ``local[2]``)."""
    return os.environ.get("SOCIALREC_SPARK_MASTER") or DEFAULT_MASTER


def spark_session():
    """The process's SparkSession (created on first use).

    Returns:
        ``pyspark.sql.SparkSession``.
    Raises:
        RuntimeError: PySpark is not installed or no ``java`` is on PATH / JAVA_HOME.
    """
    global _SESSION
    with _LOCK:
        if _SESSION is not None and _SESSION.sparkContext._jsc is not None:  # noqa: SLF001 - still alive
            return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - pyspark is a dependency
            raise RuntimeError("spark models need PySpark: pip install pyspark") from exc
        if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            raise RuntimeError("spark models need a Java runtime (17+): install one or set JAVA_HOME")
        _SESSION = (
            SparkSession.builder.master(spark_master())
            .appName("socialrec")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", os.environ.get("SOCIALREC_SPARK_DRIVER_MEMORY", "2g"))
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .getOrCreate()
        )
        _SESSION.sparkContext.setLogLevel("WARN")
        return _SESSION


def stop_spark() -> None:
    """Stop the process's SparkSession (tests, the end of a batch job). Safe to call twice."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None
