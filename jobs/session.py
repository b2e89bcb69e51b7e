"""Starting Spark with the project's defaults, and failing clearly without them."""

from __future__ import annotations

from pyspark.sql import SparkSession

DEFAULTS_MARKER = "spark.lakehouse.defaults"


class MissingSparkDefaults(RuntimeError):
    pass


def spark_session(app_name: str) -> SparkSession:
    spark = SparkSession.builder.appName(app_name).getOrCreate()
    if spark.conf.get(DEFAULTS_MARKER, None) != "loaded":
        spark.stop()
        raise MissingSparkDefaults(
            "spark-defaults.conf was not loaded: run from the repo root with "
            "SPARK_CONF_DIR=$PWD (the Makefile does this), or pass "
            "--properties-file spark-defaults.conf --load-spark-defaults"
        )
    return spark
