"""``python -m e2h COMMAND ...``: the same as the installed ``e2h`` command (launchers use it under torchrun)."""

import sys

from e2h.commands.cli import main

if __name__ == "__main__":  # importing it (pkgutil.walk_packages in tests/test_install.py) must not run the CLI
    sys.exit(main())
