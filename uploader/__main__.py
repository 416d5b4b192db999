from uploader.cli import main

raise SystemExit(main())
