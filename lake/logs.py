"""One logging set-up for every command-line entry point."""

import logging


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO; its warnings still show.
    logging.getLogger("kafka").setLevel(logging.WARNING)
