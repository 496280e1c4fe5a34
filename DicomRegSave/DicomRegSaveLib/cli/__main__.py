"""``python -m DicomRegSaveLib.cli``: the ``dicomregsave`` command."""

import sys

from DicomRegSaveLib.cli.main import main

sys.exit(main())
