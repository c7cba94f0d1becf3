from powertrain.cli import main

raise SystemExit(main())
