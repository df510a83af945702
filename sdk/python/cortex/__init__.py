"""Cortex agent SDK: the message bus (cortex.bus) and structured logging
(cortex.log). Standard library only; Python 3.10-3.13."""

from . import bus, log

__all__ = ["bus", "log"]
__version__ = "0.1.0"
