from __future__ import annotations

import sys

from labctl.cli import main

sys.exit(main())
