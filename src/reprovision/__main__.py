from reprovision.cli import main

raise SystemExit(main())
