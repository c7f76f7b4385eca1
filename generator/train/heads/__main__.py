"""``python -m generator.train.heads arrangement|tempo|pitch ...``: the same as ``python -m generator.train heads``."""

from generator.train.heads import main

if __name__ == "__main__":
    raise SystemExit(main())
