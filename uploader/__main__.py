import sys

try:
    from uploader.cli import main

    if __name__ == "__main__":  # spawned workers re-import the main module as __mp_main__
        raise SystemExit(main())
except KeyboardInterrupt:  # Ctrl-C before main's own handler is in place (imports): no traceback
    print("uploader: interrupted", file=sys.stderr)
    raise SystemExit(130) from None
