import os
import sys

if __name__ == "__main__":  # spawned workers re-import the main module as __mp_main__
    try:
        from uploader import interrupts

        interrupts.hold()  # a Ctrl-C during the imports from here on is raised where it can be handled
        from uploader.cli import main

        code = main()
    except KeyboardInterrupt:  # before the hold, or before main's own handling (building its parser)
        os.write(2, b"uploader: interrupted\n")
        os._exit(130)  # not SystemExit: a finalizing interpreter would turn the signal into a -SIGINT exit
    sys.exit(code)
