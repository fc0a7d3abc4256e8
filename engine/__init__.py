"""Lintas engine: contracts (events, pipeline spec, stage protocol, errors) and the core."""

__version__ = "0.1.0"
