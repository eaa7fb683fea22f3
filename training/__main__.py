"""``python -m training`` runs the training command line, ``train.py`` (also installed as ``lead-train``).

It is run as a script, not imported: the command line sits above every room, this package below it.
"""

import runpy

runpy.run_module("train", run_name="__main__", alter_sys=True)
