from restorekit.cli import main

raise SystemExit(main())
