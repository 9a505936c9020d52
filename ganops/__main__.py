import sys

from ganops.cli import main

sys.exit(main())
