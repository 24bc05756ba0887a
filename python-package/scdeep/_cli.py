"""The ``scdeep`` console script of the wheel: the same command line as the standalone
binary (``scdeep --help``), run by the extension module in this process, so a pip
install gives pipelines a ``scdeep`` on PATH without a Rust toolchain."""
import sys


def main():
    from . import _scdeep  # the package imports torch first, which loads libtorch

    sys.exit(_scdeep.cli_main(["scdeep", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
