import sys

from dqm.cli import main

sys.exit(main())
