"""Starts a localnet (as `ghost demo` does), prints its pid, and waits: killed by the test above."""

import sys
import time
from pathlib import Path

from ghostpay.localnet.process import LocalnetProcess

net = LocalnetProcess(Path(sys.argv[1])).start()
print(net.proc.pid, flush=True)
time.sleep(120)
