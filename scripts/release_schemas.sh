#!/usr/bin/env bash
# make release-schemas VERSION=x.y.z: publish schemas/ as the baseline schemas/releases/<x.y.z>.binpb
# and record x.y.z in schemas/VERSION (qmtl_codegen.release_schemas says what it checks), then
# regenerate so the changelog and the generated versions follow.
#   scripts/release_schemas.sh VERSION
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/python -m qmtl_codegen.release_schemas "$@"
# The changelog, the package and OpenAPI versions follow schemas/VERSION and the new baseline.
echo "release-schemas: regenerating (docs/schemas/CHANGELOG.md, versions) with scripts/generate.sh"
bash scripts/generate.sh
