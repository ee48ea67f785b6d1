"""Stand-in for pip's get-pip.py, for ansible-test's sanity venvs.

ansible-test bootstraps pip in each sanity venv by downloading get-pip.py from a
host that CI here cannot reach. This does the same job with the standard
library's bundled pip (ensurepip), then runs `pip install` with the arguments
ansible-test passes (the pinned pip, setuptools and wheel come from PyPI).
"""

import ensurepip
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
environ = dict(os.environ)
ensurepip.bootstrap(upgrade=True)  # sets PIP_CONFIG_FILE=/dev/null, which would drop the machine's pip.conf
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=environ))
