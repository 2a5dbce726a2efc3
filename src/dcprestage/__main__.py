import sys

from dcprestage.main import main

sys.exit(main())
