import os
import sys

if __name__ == "__main__":  # spawned workers re-import the main module as __mp_main__
    try:
        from uploader import interrupts

        interrupts.hold()  # Ctrl-C from here on is raised where the command can stop cleanly
    except KeyboardInterrupt:  # one that came before: nothing started yet
        os.write(2, b"uploader: interrupted\n")
        os._exit(130)  # not SystemExit: a finalizing interpreter would turn the signal into a -SIGINT exit
    from uploader.cli import main

    sys.exit(main())
