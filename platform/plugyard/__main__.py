from plugyard.cli import main

raise SystemExit(main())
