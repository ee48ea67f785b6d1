"""Run suites at once, each line of their output prefixed with the suite's name; fail if any fails.

    python tests/parallel.py NAME=COMMAND [NAME=COMMAND ...]

COMMAND runs through `sh -c` (it is a line of the Makefile, written by us). A suite's lines are
printed as they come, so a long run shows progress; the end says how long each suite took.
"""

import subprocess
import sys
import threading
import time

lock = threading.Lock()


def say(name, line):
    with lock:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def run(name, command, results):
    start = time.monotonic()
    proc = subprocess.Popen(
        ["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    for line in proc.stdout:
        say(name, line)
    results[name] = (proc.wait(), time.monotonic() - start)


def main(argv):
    suites = [arg.split("=", 1) for arg in argv]
    if not suites or any(len(s) != 2 for s in suites):
        sys.exit(__doc__)
    results = {}
    threads = [threading.Thread(target=run, args=(name, command, results)) for name, command in suites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (code, seconds) in results.items():
        minutes, secs = divmod(int(seconds), 60)
        print(f">> {name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {minutes}m{secs:02d}s", flush=True)
    # A suite killed by a signal has a negative code, and one whose runner thread died has none.
    passed = len(results) == len(suites) and all(code == 0 for code, _seconds in results.values())
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
