import sys

from vm2c_tui.cli.main import main

sys.exit(main())
