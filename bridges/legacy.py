"""Old name of `tfunite.bridges.slim_fixes` (the slim bridge's legacy fixes).

Kept only for `porting/_slim.py`, which still imports it; removed when porting imports
`slim_fixes` (or relies on `tfunite.fixes.ensure("slim")`, which imports it itself).
"""

from tfunite.bridges.slim_fixes import (  # noqa: F401
    OPS_TENSOR_ALIASES,
    SLIM_BATCH_NORM_IMPORT,
    SLIM_COLLECTIONS_IDENTITY,
    SLIM_EAGER_NAME_SCOPES,
    SLIM_FIXES,
)
