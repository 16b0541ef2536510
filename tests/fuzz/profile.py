"""The hypothesis settings of the fuzz suite: bounded and reproducible, so it runs in `make test`.

derandomize makes each run try the same examples (a CI failure reproduces locally) and there
is no example database, so what one machine found does not change what another runs.
`FUZZ` runs EXAMPLES examples; `FUZZ_PER_ITEM` is for tests parametrized over every request
message or route (about twenty each), which run an eighth as many so the whole of tests/fuzz
stays near a minute. QMTL_FUZZ_EXAMPLES scales both for a longer local search
(docs/operations/fuzzing.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = "qmtl-fuzz"
EXAMPLES = int(os.environ.get("QMTL_FUZZ_EXAMPLES", "200"))

settings.register_profile(
    PROFILE,
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile(PROFILE)
FUZZ_PER_ITEM = settings(FUZZ, max_examples=max(10, EXAMPLES // 8))
