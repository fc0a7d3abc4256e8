"""Lintas workers: stage implementations and device drivers."""
