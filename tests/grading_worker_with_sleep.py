"""A grading worker (e2h.grading.timeout) that also answers ``sleep``, so tests can exercise the timeout path:

    WorkerPool(size=1, command=[sys.executable, "tests/grading_worker_with_sleep.py"]).run("sleep", [30], 0.5)
"""

import time

from e2h.grading.timeout import serve


def sleep(args: list) -> None:
    time.sleep(float(args[0]))


if __name__ == "__main__":
    serve({"sleep": sleep})
