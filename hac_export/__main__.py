"""``python -m hac_export`` = ``hac-export``."""
from hac_export.cli import export_main

export_main()
