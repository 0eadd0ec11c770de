"""tiny-mlp: an example hpcscale workload in a package of its own."""
