"""Wiring: what a command runs end to end across rooms (a training run, the comparison, a backtest, the demo).

Above every room; only the command lines (``train.py``, ``serve.py``) import it.
"""
