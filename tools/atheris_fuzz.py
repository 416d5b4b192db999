"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers of outside bytes, not in CI.

Each target is one of the hypothesis tests that feed arbitrary input to a parser and accept only the
project's typed errors; atheris drives the test's ``hypothesis.fuzz_one_input`` with the
project's code instrumented, so libFuzzer's coverage feedback steers the bytes hypothesis turns into
inputs. A failure (any other exception) stops the run with the input that caused it.

    make fuzz                                    # every target, FUZZ_SECONDS (default 60) each
    python -m tools.atheris_fuzz wire --seconds 300
    python -m tools.atheris_fuzz --list

atheris is installed by ``make fuzz`` (a wheel; not a dependency of the package or of CI).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from collections.abc import Callable

TARGETS = {
    "wire": "tests.uploader.wire.test_protocol:test_arbitrary_bytes_give_a_value_or_wire_error",
    "wire-cbor": "tests.uploader.wire.test_protocol:test_arbitrary_cbor_gives_a_value_or_wire_error",
    "wire-headers": "tests.uploader.wire.test_protocol:test_arbitrary_header_text_gives_a_value_or_our_error",
    "ueb": "tests.uploader.chk.test_ueb:test_arbitrary_bytes_are_a_ueb_or_format_error",
    "layout": "tests.uploader.chk.test_layout:test_arbitrary_bytes_are_a_share_or_format_error",
    "caps": "tests.uploader.chk.test_caps:test_arbitrary_text_is_a_cap_or_cap_error",
    "container": "tests.uploader.storage.test_container:test_header_bytes_parse_or_raise_container_error",
    "nurl": "tests.fuzz.test_nurl:test_arbitrary_text_is_a_nurl_or_nurl_error",
    "certificates": "tests.fuzz.test_nurl:test_arbitrary_certificate_bytes_raise_nurl_error",
    "api-route": "tests.fuzz.test_api_request:test_route_gives_a_request_or_api_error",
    "api-range": "tests.fuzz.test_api_request:test_range_headers_parse_inside_the_file_or_api_error_416",
    "config-file": "tests.fuzz.test_config:test_arbitrary_file_bytes_give_a_config_or_config_error",
    "config-env": "tests.fuzz.test_config:test_environment_values_give_a_config_or_config_error",
}


def load(target: str) -> Callable[[bytes], object]:
    import atheris

    module_name, test_name = TARGETS[target].split(":")
    for name in [m for m in sys.modules if m.split(".")[0] in ("uploader", "workers")]:
        del sys.modules[name]  # loaded again below, instrumented
    with atheris.instrument_imports(include=["uploader", "workers"]):
        import uploader  # noqa: F401  (the package and what its parsers need)

        module = importlib.import_module(module_name)
    test = getattr(module, test_name)
    fuzz: Callable[[bytes], object] = test.hypothesis.fuzz_one_input
    return fuzz


def run_one(target: str, seconds: int, extra: list[str]) -> int:
    import atheris

    fuzz = load(target)
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-print_final_stats=1", *extra], fuzz)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="all", help="a target name, or all (default)")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--list", action="store_true", help="list the targets")
    args, extra = parser.parse_known_args(argv)
    if args.list:
        for name, where in TARGETS.items():
            print(f"{name:14} {where}")
        return 0
    if args.target != "all":
        if args.target not in TARGETS:
            parser.error(f"unknown target {args.target!r}; --list shows them")
        return run_one(args.target, args.seconds, extra)
    worst = 0
    for name in TARGETS:  # one process each: libFuzzer runs one target per process
        print(f"== {name} ({args.seconds} s)", flush=True)
        code = subprocess.run(
            [sys.executable, "-m", "tools.atheris_fuzz", name, "--seconds", str(args.seconds)]
        ).returncode
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main())
