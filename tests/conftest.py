"""pytest configuration for the skcce test suite.

Makes the helper module ``_reference`` (independent NumPy / scikit-learn
reference implementations) importable regardless of pytest's import mode.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
