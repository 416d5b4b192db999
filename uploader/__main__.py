import sys

try:
    from uploader.cli import main

    if __name__ == "__main__":  # spawned workers re-import the main module as __mp_main__
        raise SystemExit(main())
except KeyboardInterrupt:  # Ctrl-C before main's own handler is in place (imports): no traceback
    import os

    print("uploader: interrupted", file=sys.stderr, flush=True)
    os._exit(130)  # not SystemExit: a finalizing interpreter would turn the signal into a -SIGINT exit
