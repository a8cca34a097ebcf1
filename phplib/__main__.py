from phplib.cli import main

raise SystemExit(main())
