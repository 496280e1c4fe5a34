"""The export: its options (one table), the pipeline deformation -> REG file, and a request from a front end."""
