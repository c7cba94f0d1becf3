import sys

from powertrain_agent.cli import main

sys.exit(main())
