"""Site descriptors: models, discovery and this machine's detection."""

from hpcscale.sites.models import Site, format_walltime, walltime_seconds
from hpcscale.sites.registry import load_file, load_site, site_files

__all__ = ["Site", "format_walltime", "load_file", "load_site", "site_files", "walltime_seconds"]
