"""Study kinds, one module per kind (``registry.STUDY_KINDS``): what a kind adds to the report."""
