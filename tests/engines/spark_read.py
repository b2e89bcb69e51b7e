"""Read lake tables with delta-spark, as a Spark user would: `python spark_read.py LAKE OUT TABLE...`
(`--resolve`: only fetch Delta's jars into Ivy's cache, as `make deps` does).

Each table is read with `spark.read.format("delta").load(path)` and written to OUT/<table>.arrow
(Arrow IPC) for the test to compare. Run in its own process: it needs Delta's jars on Spark's
classpath, which a running Spark session of the test process cannot gain.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
from pyspark.sql import SparkSession

from lake.delta import DELTA_SPARK_PACKAGE


def session() -> SparkSession:
    return (
        SparkSession.builder.appName("delta-read")
        .config("spark.jars.packages", DELTA_SPARK_PACKAGE)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .getOrCreate()
    )


def main(lake: str, out: str, tables: list[str]) -> None:
    spark = session()
    try:
        for table in tables:
            frame = spark.read.format("delta").load(str(Path(lake) / table))
            arrow = frame.toArrow()
            with pa.OSFile(str(Path(out) / f"{table}.arrow"), "wb") as sink, pa.ipc.new_file(sink, arrow.schema) as w:
                w.write_table(arrow)
    finally:
        spark.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--resolve"]:
        session().stop()
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3:])
