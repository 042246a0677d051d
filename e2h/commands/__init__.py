"""The top floor: the ``e2h`` command line and the commands that drive the core and the stages (prm/, policy/).

Nothing in the core imports this package; the per-area commands (e2h/data/commands.py, e2h/world/commands.py,
e2h/grading/commands.py, e2h/serve/commands.py, e2h/report/commands.py) stay beside the code they drive.
"""
