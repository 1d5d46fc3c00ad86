"""The examples in the public docstrings run and print what they claim."""

import doctest

import pytest

import skcce._classifier
import skcce._cv
import skcce._loss
import skcce._metrics


@pytest.mark.parametrize(
    "module", [skcce._classifier, skcce._cv, skcce._loss, skcce._metrics]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, "expected docstring examples to run"
    assert result.failed == 0
