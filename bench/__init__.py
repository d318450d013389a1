"""Benchmarks: the shim against nginx serving canned Glance pages, and against two floors.

Run ``bench/run`` (or ``python -m bench``). Nothing here is imported by the shim; the shim is
only ever started as a subprocess (``python -m shim``), exactly as an operator would run it.
"""
