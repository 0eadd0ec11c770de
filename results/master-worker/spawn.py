"""Start WORLD ranks of ``python -m hpcscale.train ARGS`` on this host (the H200 measurement's
launcher): python spawn.py WORLD ARGS...; prints the ranks' exit codes."""

import os
import signal
import socket
import subprocess
import sys

world, args = int(sys.argv[1]), sys.argv[2:]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
procs = []
for r in range(world):
    env = {
        **os.environ, "RANK": str(r), "WORLD_SIZE": str(world), "LOCAL_RANK": str(r),
        "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    procs.append(subprocess.Popen([sys.executable, "-m", "hpcscale.train", *args], env=env))


def stop(signum: int, frame: object) -> None:
    for p in procs:
        p.kill()
    sys.exit(124)


signal.signal(signal.SIGTERM, stop)
print([p.wait() for p in procs])
