import os, signal, socket, subprocess, sys
world = int(sys.argv[1]); args = sys.argv[2:]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
procs = []
for r in range(world):
    env = {**os.environ, "RANK": str(r), "WORLD_SIZE": str(world), "LOCAL_RANK": str(r),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": str(world)}
    procs.append(subprocess.Popen([sys.executable, "-m", "hpcscale.train", *args], env=env))
def stop(signum, frame):
    for p in procs:
        p.kill()
    sys.exit(124)
signal.signal(signal.SIGTERM, stop)
print([p.wait() for p in procs])
