import sys

from ganops.commands.cli import main

sys.exit(main())
