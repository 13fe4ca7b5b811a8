"""`python -m rlhf.feedback SUBVERB ...` is `rlhf label SUBVERB ...` without importing torch."""

import sys

from rlhf.feedback.cli import main

sys.exit(main())
