"""Logging set-up shared by the entry points."""

import logging
import os


def configure_logging(service: str) -> int:
    level = logging.getLevelName(os.environ.get("JOBLEDGER_LOG_LEVEL", "INFO").upper())
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    # faust and aiokafka narrate every rebalance step at INFO; keep their warnings only.
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return int(level)
