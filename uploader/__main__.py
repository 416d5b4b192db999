from uploader.cli import main

if __name__ == "__main__":  # spawned workers re-import the main module as __mp_main__
    raise SystemExit(main())
