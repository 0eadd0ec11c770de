"""Container runtimes, one module per runtime (``registry.RUNTIMES``): what wraps every rank."""
