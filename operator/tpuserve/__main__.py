from tpuserve.cli import main

raise SystemExit(main())
